//! Where a webhook token leads: a [`Route`] (one environment of one source), the stored
//! [`TokenEntry`]s, and the [`RouteTable`] the pipeline looks tokens up in (a retired
//! token leads nowhere).

use crate::config::{Catalog, EnvironmentConfig, SourceConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a token leads: one environment of one source.
#[derive(Debug, Clone)]
pub struct Route {
    pub source: Arc<SourceConfig>,
    pub environment: String,
    pub env: Arc<EnvironmentConfig>,
}

impl Route {
    /// The route of environment `environment` of source `source` in `catalog`.
    pub fn of(catalog: &Catalog, source: &str, environment: &str) -> Option<Route> {
        let config = catalog.source(source)?;
        let env = config.environments.get(environment)?;
        Some(Route {
            source: config.clone(),
            environment: environment.to_string(),
            env: env.clone(),
        })
    }
}

/// A stored webhook token: where it leads, and when it stops working (a token replaced
/// by a rotation keeps working until the rotation's overlap ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub token: String,
    pub source: String,
    pub environment: String,
    pub retires_at_ms: Option<i64>,
}

/// Token → route, built from a catalog and the stored tokens.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: HashMap<String, (Route, Option<i64>)>,
}

impl RouteTable {
    /// Tokens naming a source or environment absent from `catalog` are ignored (a source
    /// removed from config stops receiving).
    pub fn new<'a>(catalog: &Catalog, tokens: impl IntoIterator<Item = &'a TokenEntry>) -> Self {
        let routes = tokens
            .into_iter()
            .filter_map(|t| {
                let route = Route::of(catalog, &t.source, &t.environment)?;
                Some((t.token.clone(), (route, t.retires_at_ms)))
            })
            .collect();
        RouteTable { routes }
    }

    /// Where `token` leads at `now_ms` (a retired token leads nowhere).
    pub fn get(&self, token: &str, now_ms: i64) -> Option<&Route> {
        let (route, retires_at_ms) = self.routes.get(token)?;
        retires_at_ms.is_none_or(|at| now_ms < at).then_some(route)
    }
}
