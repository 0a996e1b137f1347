//! Source config and webhook tokens in the stack's config table.
//!
//! `inlet config push` writes the whole `infra/sources` directory (YAML and scripts) as
//! one bundle item and one item per token. The ingest function reads the bundle, runs the
//! same validation as `inlet check`, and caches the result (and each token lookup) for
//! 30 s per execution environment; a new bundle is compiled once, scripts
//! being cached by content hash.
//!
//! `inlet config push --targets FILE` writes the targets file (where workflow runs go)
//! as one more item; the actions function reads it, re-reading it after 30 s like the
//! ingest function its bundle. A stack that was never given one has no targets: its
//! runs are recorded only.
//!
//! A token rotation ([`ConfigTable::rotate`]) writes a new token and gives the ones it
//! replaces a `retires_at_ms`: they keep working until then and are refused after it
//! (checked on every request, cached or not). A new token reaches warm ingest
//! containers within the 30 s of the token cache (an unknown token is cached as
//! unknown), so a rotation's overlap should be longer than that.

use crate::error::store_error;
use crate::item::{Item, get_n, get_s, n, s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use inlet_core::clock::Clock;
use inlet_core::config::{Catalog, ConfigErrors, SourceFile, Targets, load_sources, parse_targets};
use inlet_core::pipeline::{Route, TokenEntry};
use inlet_core::script::ScriptEngine;
use inlet_core::store::StoreError;
use inlet_core::tokens::{Rotation, TokenStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const CONFIG_CACHE_MS: i64 = 30_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigTableError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "no config has been pushed to this stack; run `inlet config push --env <env> --table <config table>`"
    )]
    NotPushed,
    #[error("the pushed config does not validate:\n{0}")]
    Invalid(ConfigErrors),
}

/// A webhook token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub token: String,
    pub source: String,
    pub environment: String,
    pub created_at_ms: i64,
    /// When a token replaced by a rotation stops working.
    pub retires_at_ms: Option<i64>,
}

/// A token's route and when the token retires (if a rotation replaced it).
type RetiringRoute = (Route, Option<i64>);

pub struct ConfigTable {
    pub client: Client,
    pub table: String,
    pub engine: Arc<ScriptEngine>,
    pub clock: Arc<dyn Clock>,
    catalog: Mutex<Option<(i64, String, Arc<Catalog>)>>,
    targets: Mutex<Option<(i64, Arc<Targets>)>>,
    tokens: Mutex<HashMap<String, (i64, Option<RetiringRoute>)>>,
}

impl ConfigTable {
    pub fn new(
        client: Client,
        table: String,
        engine: Arc<ScriptEngine>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        ConfigTable {
            client,
            table,
            engine,
            clock,
            catalog: Mutex::default(),
            targets: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// Writes the bundle: every file, keyed by its name inside the sources directory.
    pub async fn push_bundle(&self, files: &[(String, String)]) -> Result<(), StoreError> {
        let map: HashMap<String, AttributeValue> = files
            .iter()
            .map(|(name, text)| (name.clone(), s(text.clone())))
            .collect();
        let version = format!("{}", self.clock.now_ms());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("CONFIG"))
            .item("sk", s("BUNDLE"))
            .item("files", AttributeValue::M(map))
            .item("version", s(version))
            .send()
            .await
            .map_err(|e| store_error("push config", e))?;
        Ok(())
    }

    /// Writes the targets file (validated by the caller).
    pub async fn push_targets(&self, text: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("CONFIG"))
            .item("sk", s("TARGETS"))
            .item("file", s(text.to_string()))
            .send()
            .await
            .map_err(|e| store_error("push targets", e))?;
        Ok(())
    }

    /// The config item `sk` (the bundle, the targets), if pushed.
    async fn config_item(&self, sk: &str, what: &str) -> Result<Option<Item>, StoreError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("CONFIG"))
            .key("sk", s(sk.to_string()))
            .send()
            .await
            .map_err(|e| store_error(what, e))?;
        Ok(answer.item)
    }

    /// The pushed targets (none when none were pushed), from cache when fresh.
    pub async fn targets(&self) -> Result<Arc<Targets>, ConfigTableError> {
        let now = self.clock.now_ms();
        if let Some((at, targets)) = &*self.targets.lock().expect("targets cache poisoned")
            && now - at < CONFIG_CACHE_MS
        {
            return Ok(targets.clone());
        }
        let targets = match self.config_item("TARGETS", "read targets").await? {
            Some(item) => parse_targets(get_s(&item, "file")?, Path::new("targets (pushed)"))
                .map_err(ConfigTableError::Invalid)?,
            None => Targets::default(),
        };
        let targets = Arc::new(targets);
        *self.targets.lock().expect("targets cache poisoned") = Some((now, targets.clone()));
        Ok(targets)
    }

    pub async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s("TOKEN"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("list tokens", e))?;
        page.items
            .unwrap_or_default()
            .iter()
            .map(token_of)
            .collect()
    }

    /// Stores a token unless it exists.
    pub async fn put_token(&self, token: &StoredToken) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("TOKEN"))
            .item("sk", s(token.token.clone()))
            .item("source", s(token.source.clone()))
            .item("environment", s(token.environment.clone()))
            .item("created_at_ms", n(token.created_at_ms));
        if let Some(at) = token.retires_at_ms {
            put = put.item("retires_at_ms", n(at));
        }
        put.condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| store_error("put token", e))?;
        Ok(())
    }

    /// The validated catalog, from cache when fresh.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, ConfigTableError> {
        let now = self.clock.now_ms();
        let cached = self.catalog.lock().expect("config cache poisoned").clone();
        if let Some((at, _, catalog)) = &cached
            && now - at < CONFIG_CACHE_MS
        {
            return Ok(catalog.clone());
        }
        let item = self
            .config_item("BUNDLE", "read config")
            .await?
            .ok_or(ConfigTableError::NotPushed)?;
        let version = get_s(&item, "version")?.to_string();
        if let Some((_, cached_version, catalog)) = cached.filter(|(_, v, _)| *v == version) {
            *self.catalog.lock().expect("config cache poisoned") =
                Some((now, cached_version, catalog.clone()));
            return Ok(catalog);
        }
        let catalog = Arc::new(catalog_from_bundle(&item, &self.engine)?);
        *self.catalog.lock().expect("config cache poisoned") =
            Some((now, version, catalog.clone()));
        Ok(catalog)
    }

    /// Where `token` leads in `environment`, from cache when fresh (unknown tokens are
    /// cached too, so a flood of bad tokens costs one read per token per 30 s).
    pub async fn route(
        &self,
        token: &str,
        environment: &str,
    ) -> Result<Option<Route>, ConfigTableError> {
        let now = self.clock.now_ms();
        let usable = |found: &Option<RetiringRoute>| {
            found
                .as_ref()
                .filter(|(_, retires)| retires.is_none_or(|at| now < at))
                .map(|(route, _)| route.clone())
        };
        if let Some((at, found)) = self.tokens.lock().expect("token cache poisoned").get(token)
            && now - at < CONFIG_CACHE_MS
        {
            return Ok(usable(found));
        }
        let catalog = self.catalog().await?;
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("TOKEN"))
            .key("sk", s(token))
            .send()
            .await
            .map_err(|e| store_error("read token", e))?
            .item;
        let found = match item {
            Some(item) => {
                let stored = token_of(&item)?;
                (stored.environment == environment)
                    .then(|| Route::of(&catalog, &stored.source, &stored.environment))
                    .flatten()
                    .map(|route| (route, stored.retires_at_ms))
            }
            None => None,
        };
        let route = usable(&found);
        let mut cache = self.tokens.lock().expect("token cache poisoned");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(token.to_string(), (now, found));
        Ok(route)
    }
}

fn token_of(item: &Item) -> Result<StoredToken, StoreError> {
    Ok(StoredToken {
        token: get_s(item, "sk")?.to_string(),
        source: get_s(item, "source")?.to_string(),
        environment: get_s(item, "environment")?.to_string(),
        created_at_ms: get_n(item, "created_at_ms")?,
        retires_at_ms: get_n(item, "retires_at_ms").ok(),
    })
}

/// Validates a bundle item exactly as `inlet check` validates the directory.
fn catalog_from_bundle(item: &Item, engine: &ScriptEngine) -> Result<Catalog, ConfigTableError> {
    let files: HashMap<String, String> = item
        .get("files")
        .and_then(|f| f.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect()
        })
        .ok_or_else(|| StoreError::Failed("the config bundle has no files".into()))?;
    let root = Path::new("sources");
    let mut sources: Vec<SourceFile> = files
        .iter()
        .filter(|(name, _)| name.ends_with(".yaml") || name.ends_with(".yml"))
        .map(|(name, text)| SourceFile {
            path: root.join(name),
            text: text.clone(),
        })
        .collect();
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    let read = |path: &Path| -> std::io::Result<String> {
        let name = path
            .strip_prefix(root)
            .map(PathBuf::from)
            .unwrap_or_else(|_| path.to_path_buf());
        files
            .get(&name.to_string_lossy().to_string())
            .cloned()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not in the pushed bundle")
            })
    };
    load_sources(&sources, &read, engine).map_err(ConfigTableError::Invalid)
}

/// A stored token as the core sees it.
fn entry(t: StoredToken) -> TokenEntry {
    TokenEntry {
        token: t.token,
        source: t.source,
        environment: t.environment,
        retires_at_ms: t.retires_at_ms,
    }
}

#[async_trait::async_trait]
impl TokenStore for ConfigTable {
    async fn active(&self, now_ms: i64) -> Result<Vec<TokenEntry>, StoreError> {
        let mut working: Vec<StoredToken> = self
            .tokens()
            .await?
            .into_iter()
            .filter(|t| t.retires_at_ms.is_none_or(|at| at > now_ms))
            .collect();
        working.sort_by(|a, b| {
            (
                &a.source,
                &a.environment,
                a.retires_at_ms.is_none(),
                a.created_at_ms,
            )
                .cmp(&(
                    &b.source,
                    &b.environment,
                    b.retires_at_ms.is_none(),
                    b.created_at_ms,
                ))
        });
        Ok(working.into_iter().map(entry).collect())
    }

    async fn ensure(&self, pairs: &[(String, String)], now_ms: i64) -> Result<usize, StoreError> {
        let existing = self.tokens().await?;
        let mut created = 0;
        for (source, environment) in pairs {
            let current = existing.iter().any(|t| {
                &t.source == source && &t.environment == environment && t.retires_at_ms.is_none()
            });
            if !current {
                self.put_token(&StoredToken {
                    token: inlet_core::store::new_webhook_token()?,
                    source: source.clone(),
                    environment: environment.clone(),
                    created_at_ms: now_ms,
                    retires_at_ms: None,
                })
                .await?;
                created += 1;
            }
        }
        Ok(created)
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Vec<TokenEntry>, StoreError> {
        let Rotation {
            source,
            environment,
            now_ms,
            ..
        } = rotation;
        let retires_at = rotation.retires_at_ms();
        let working: Vec<StoredToken> = self
            .tokens()
            .await?
            .into_iter()
            .filter(|old| {
                old.source == source
                    && old.environment == environment
                    && old.retires_at_ms.is_none_or(|at| at > now_ms)
            })
            .collect();
        // The new token first: a rotation that stops half-way (or whose answer is lost)
        // leaves an extra working token, never an environment whose tokens all retire.
        // Asked again, it retires that one too.
        let fresh = StoredToken {
            token: inlet_core::store::new_webhook_token()?,
            source: source.to_string(),
            environment: environment.to_string(),
            created_at_ms: now_ms,
            retires_at_ms: None,
        };
        self.put_token(&fresh).await?;
        let mut pair = Vec::new();
        for mut old in working {
            if old.retires_at_ms.is_none_or(|at| at > retires_at) {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s("TOKEN"))
                    .key("sk", s(old.token.clone()))
                    .update_expression("SET retires_at_ms = :at")
                    .expression_attribute_values(":at", n(retires_at))
                    .send()
                    .await
                    .map_err(|e| store_error("retire token", e))?;
                old.retires_at_ms = Some(retires_at);
            }
            pair.push(old);
        }
        pair.sort_by_key(|t| t.created_at_ms);
        pair.push(fresh);
        Ok(pair.into_iter().map(entry).collect())
    }
}
