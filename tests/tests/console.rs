//! The web console on the dev server: its pages over HTTP (what they show, escaping,
//! redaction, the rehearse, replay and directory pages, cross-site refusal), and the
//! same pages driven in headless Chromium through chromedriver (the live list, filters,
//! clicks), with a screenshot of each page in `target/console-screenshots/`.

mod common;

use common::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;

/// GETs a page: status, content type, text.
async fn page(base: &str, path: &str) -> (StatusCode, String, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// The console's pages (server-rendered HTML over the admin API): sources with their
/// URLs, the event list with its filters in the query string, an event with its action
/// log; values are escaped, secrets stay redacted, unknown events are a 404 page.
#[tokio::test]
async fn the_console_pages_show_sources_events_and_an_event_with_its_action_log() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let body = sample("task-assigned.json").replace(
        "Write the launch",
        "<script>alert(1)</script> Write the launch",
    );
    let sent = post(&url, &body, &[("x-webhook-secret", SECRET)]).await;
    let id = sent.body["event_id"].as_str().unwrap().to_string();
    let refused = post(&url, &body, &[("x-webhook-secret", "wrong")]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 1).await;
    let (status, content_type, html) = page(&base, "/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains(&url), "the webhook URL is shown");
    assert!(html.contains("Task management app") && html.contains("task.assigned"));

    let (_, _, list) = page(&base, "/console/events").await;
    assert!(
        list.contains(&format!("href=\"/console/events/{id}\"")),
        "{list}"
    );
    assert!(list.contains("class=\"status rejected\""));
    let (_, _, accepted_only) = page(&base, "/console/events?status=accepted&source=&env=").await;
    assert!(accepted_only.contains(&id));
    assert!(!accepted_only.contains("class=\"status rejected\""));
    assert!(
        accepted_only.contains("<option value=\"accepted\" selected>"),
        "the filter is kept"
    );

    let (status, _, detail) = page(&base, &format!("/console/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        detail.contains("workflows_trigger") && detail.contains("class=\"status succeeded\""),
        "{detail}"
    );
    assert!(
        detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "values are escaped"
    );
    assert!(
        !detail.contains("<script>alert(1)"),
        "no raw markup from the payload"
    );
    assert!(
        detail.contains("<summary>mapping</summary>") && detail.contains("data.assigned_to"),
        "each action's mapping is shown beside its resolved params"
    );
    assert!(!detail.contains(SECRET), "the secret header stays redacted");
    assert!(detail.contains("[redacted]"));

    let (status, _, types) = page(&base, "/console/event-types?source=task-app").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        types.contains(
            "href=\"/console/events?source=task-app&amp;env=development&amp;type=task.assigned\""
        ),
        "{types}"
    );
    assert!(
        types.contains("<td>1</td>"),
        "one accepted event counted: {types}"
    );

    let (status, _, missing) = page(&base, "/console/events/no-such-event").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        missing.starts_with("<!DOCTYPE html>") && missing.contains("no event `no-such-event`"),
        "an error is a page, not JSON: {missing}"
    );
}

/// POSTs a form to a console page without following the redirect: status, Location,
/// text.
async fn form_post(
    base: &str,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut request = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status, location, response.text().await.unwrap())
}

/// The rehearse page runs a dry run and shows what would happen (storing nothing); the
/// replay button stores a new event and leads to it; the directory pages show what the
/// actions wrote; the live list's rows follow new events; a POST from another site is
/// refused, on the console and on the admin API alike.
#[tokio::test]
async fn the_console_rehearses_replays_shows_the_directory_and_refuses_other_sites() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let body = sample("task-assigned.json");
    let secret_header = format!("x-webhook-secret: {SECRET}");

    // Rehearse: nothing stored, the answer and the plan shown, the form kept.
    let (status, _, html) = page(&base, "/console/rehearse?source=task-app&env=development").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<option value=\"task-app\" selected>"),
        "{html}"
    );
    let fields = [
        ("source", "task-app"),
        ("env", "development"),
        ("headers", secret_header.as_str()),
        ("body", body.as_str()),
    ];
    let (status, _, html) = form_post(&base, "/console/rehearse", &fields, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<strong>202</strong> accepted"), "{html}");
    assert!(html.contains("enforced:verified") && html.contains("workflows_trigger"));
    assert!(
        html.contains("user_456"),
        "the resolved recipients are shown"
    );
    assert!(
        html.contains("evt_task_assigned_0001"),
        "the form keeps the payload"
    );
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM events"),
        0,
        "a dry run stores nothing"
    );
    let (_, _, html) = form_post(
        &base,
        "/console/rehearse",
        &[
            ("source", "task-app"),
            ("headers", "no colon here"),
            ("body", "{}"),
        ],
        &[],
    )
    .await;
    assert!(
        html.contains("header line 1 `no colon here` is not `Name: value`"),
        "{html}"
    );

    // The live rows: empty, then the event once sent.
    let (_, _, rows) = page(&base, "/console/live/events?status=accepted").await;
    assert!(rows.contains("No events match."), "{rows}");
    let sent = post(&url, &body, &[("x-webhook-secret", SECRET)]).await;
    let id = sent.body["event_id"].as_str().unwrap().to_string();
    let (_, _, rows) = page(&base, "/console/live/events?status=accepted").await;
    assert!(rows.starts_with("<tr>") && rows.contains(&id), "{rows}");
    let (_, _, list) = page(&base, "/console/events").await;
    assert!(
        list.contains("data-live=\"/console/live/events?\""),
        "the first page is live: {list}"
    );
    assert!(list.contains("data-refresh-ms=\"2000\""), "{list}");
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 1).await;

    // The directory: the workflow run, its recipient, the lookup form's redirect.
    let (status, _, runs) = page(&base, "/console/directory/workflow-runs").await;
    assert_eq!(status, StatusCode::OK);
    let run_id = format!("wr_{id}_0");
    assert!(
        runs.contains(&format!(
            "href=\"/console/directory/workflow-runs/{run_id}\""
        )),
        "{runs}"
    );
    let (status, _, run) = page(&base, &format!("/console/directory/workflow-runs/{run_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        run.contains("task-assigned") && run.contains(&format!("href=\"/console/events/{id}\""))
    );
    assert!(
        run.contains("href=\"/console/directory/users/user_456\""),
        "{run}"
    );
    // Its delivery, from the trigger action, linked to that action on the event's page.
    assert!(
        run.contains("<h2>Delivery</h2>")
            && run.contains(&format!("href=\"/console/events/{id}#action-0\""))
            && run.contains("workflows_trigger"),
        "{run}"
    );
    let (status, _, user) = page(&base, "/console/directory/users/user_456").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a trigger does not create the user: {user}"
    );
    assert!(user.contains("no user `user_456` in development"), "{user}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let lookup = client
        .get(format!(
            "{base}/console/directory?kind=object&collection=projects&id=p%201"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        lookup.headers()["location"],
        "/console/directory/objects/projects/p%201"
    );
    // The forms offer the config's environments, not a free-text field.
    for path in ["/console/directory", "/console/directory/workflow-runs"] {
        let (status, _, form) = page(&base, path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            form.contains(
                "<select name=\"env\"><option value=\"development\">development</option></select>"
            ),
            "{path}: {form}"
        );
        assert!(!form.contains("<input name=\"env\""), "{path}: {form}");
    }
    let (_, _, form) = page(&base, "/console/directory?env=staging").await;
    assert!(
        form.contains("<option value=\"staging\" selected>staging</option>"),
        "an environment asked for stays selected: {form}"
    );

    // Replay: another site's post is refused and changes nothing; the console's own
    // leads to the new event, which points to the original.
    let replay_path = format!("/console/events/{id}/replay");
    let (status, _, refused) = form_post(
        &base,
        &replay_path,
        &[],
        &[("origin", "https://attacker.example")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.contains("cross_site_request"), "{refused}");
    let admin_refused = post(
        &format!("{base}/admin/events/{id}/replay"),
        "",
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(admin_refused.status, StatusCode::FORBIDDEN);
    // Without an Origin, the page another site's browser names in Referer; and an
    // opaque page's `Origin: null`.
    for headers in [
        vec![("referer", "https://evil.example/page")],
        vec![("origin", "null")],
    ] {
        let refused = post(&format!("{base}/admin/events/{id}/replay"), "", &headers).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{headers:?}");
        let (status, _, _) = form_post(&base, &replay_path, &[], &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert_eq!(ws.count("SELECT COUNT(*) FROM events"), 1);
    // The console's pages cannot be framed, and run only their own script.
    let framed = reqwest::get(format!("{base}/console/events/{id}"))
        .await
        .unwrap();
    assert_eq!(framed.headers()["x-frame-options"], "DENY");
    let csp = framed.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let own_origin = base.clone();
    let (status, location, _) =
        form_post(&base, &replay_path, &[], &[("origin", &own_origin)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    let new_id = location.strip_prefix("/console/events/").unwrap();
    assert_ne!(new_id, id);
    let (_, _, replayed) = page(&base, &location).await;
    assert!(
        replayed.contains("Replay of")
            && replayed.contains(&format!("href=\"/console/events/{id}\"")),
        "{replayed}"
    );
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 2).await;
}

/// chromedriver on a free port, stopped (by its PID) when dropped.
struct ChromeDriver {
    child: std::process::Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Self {
        for (binary, package) in [
            ("/usr/bin/chromium", "chromium"),
            ("/usr/bin/chromedriver", "chromium-driver"),
        ] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's `{package}` (tests/run installs chromium and chromium-driver when missing)"
            );
        }
        let port = free_port();
        let child = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Owned at once, so that it is stopped even if it never answers.
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if reqwest::get(format!("{}/status", driver.url)).await.is_ok() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {} within 10 s", driver.url);
    }

    /// A headless Chromium session with a fresh profile. The flags keep Chromium off
    /// the network (this machine has none) and let it run as root in a container.
    async fn browser(&self, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves a screenshot of the current page as `name` in the screenshots directory.
async fn screenshot(browser: &Client, name: &str) {
    let dir = repo_root().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(dir.join(name), png).unwrap();
}

/// Waits up to 10 s for an element matching `css` whose text contains `text`.
async fn wait_for_text(browser: &Client, css: &str, text: &str) -> Element {
    for _ in 0..100 {
        for element in browser.find_all(Locator::Css(css)).await.unwrap() {
            if element.text().await.is_ok_and(|t| t.contains(text)) {
                return element;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = browser.source().await.unwrap_or_default();
    panic!("no `{css}` with text `{text}` within 10 s; the page:\n{page}");
}

/// The console in a real browser: an event sent while the events list is open appears
/// without a reload; filtering by status keeps only that status; the event's page shows
/// its action log; replay and rehearse work through their forms. Screenshots of each
/// page go to `target/console-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium_shows_events_live_filters_and_opens_them() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;

    browser.goto(&format!("{base}/console")).await.unwrap();
    let copy = browser
        .find(Locator::Css("button[data-copy]"))
        .await
        .unwrap();
    assert_eq!(
        copy.attr("data-copy").await.unwrap().as_deref(),
        Some(url.as_str())
    );
    screenshot(&browser, "sources.png").await;

    // The list is open before anything arrives; a marker on the window tells whether
    // the page was reloaded.
    browser
        .goto(&format!("{base}/console/events"))
        .await
        .unwrap();
    wait_for_text(&browser, "#event-rows td", "No events match.").await;
    browser
        .execute("window.sameDocument = 'yes';", vec![])
        .await
        .unwrap();
    let body = sample("task-assigned.json");
    let sent = post(&url, &body, &[("x-webhook-secret", SECRET)]).await;
    let id = sent.body["event_id"].as_str().unwrap().to_string();
    let other = sample("task-completed.json");
    let refused = post(&url, &other, &[("x-webhook-secret", "wrong")]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let completed = post(&url, &other, &[("x-webhook-secret", SECRET)]).await;
    assert_eq!(completed.status, StatusCode::ACCEPTED);
    let row = wait_for_text(&browser, "#event-rows tr", &id).await;
    assert!(row.text().await.unwrap().contains("accepted"));
    wait_for_text(&browser, "#event-rows tr", "rejected").await;
    let marker = browser
        .execute("return window.sameDocument || 'reloaded';", vec![])
        .await
        .unwrap();
    assert_eq!(marker, "yes", "new events appeared without a reload");
    wait_for_text(&browser, "#live-status", "updated").await;
    screenshot(&browser, "events.png").await;

    // Filter by status through the form.
    browser
        .find(Locator::Css("select[name=status]"))
        .await
        .unwrap()
        .select_by_value("rejected")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form[aria-label='Filter events'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, "#event-rows tr", "rejected").await;
    let current = browser.current_url().await.unwrap();
    assert!(
        current.query().unwrap().contains("status=rejected"),
        "{current}"
    );
    let rows = browser
        .find_all(Locator::Css("#event-rows tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the rejected event is listed");
    assert!(!rows[0].text().await.unwrap().contains(&id));

    // Open the accepted event from the list; its action log ran.
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 2).await;
    browser
        .goto(&format!("{base}/console/events?status=accepted"))
        .await
        .unwrap();
    wait_for_text(&browser, "#event-rows a", &id)
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, "h1", &id).await;
    let actions = wait_for_text(&browser, "main table tr", "workflows_trigger").await;
    assert!(actions.text().await.unwrap().contains("succeeded"));
    screenshot(&browser, "event.png").await;

    // Replay from the event's page.
    browser
        .find(Locator::Css("form[action$='/replay'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let replay_of = wait_for_text(&browser, "main dd a", &id).await;
    assert_eq!(
        replay_of.attr("href").await.unwrap().as_deref(),
        Some(format!("/console/events/{id}").as_str())
    );
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM events WHERE replay_of IS NOT NULL"),
        1
    );

    // Rehearse a payload through the form: a duplicate of the stored event.
    browser
        .goto(&format!("{base}/console/rehearse"))
        .await
        .unwrap();
    browser
        .find(Locator::Css("textarea[name=headers]"))
        .await
        .unwrap()
        .send_keys(&format!("x-webhook-secret: {SECRET}"))
        .await
        .unwrap();
    browser
        .find(Locator::Css("textarea[name=body]"))
        .await
        .unwrap()
        .send_keys(&body)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form[action='/console/rehearse'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, "#outcome", "What would happen").await;
    wait_for_text(&browser, "main dd", &format!("duplicate of {id}")).await;
    screenshot(&browser, "rehearse.png").await;

    for (path, name) in [
        ("/console/event-types", "event-types.png"),
        ("/console/directory/workflow-runs", "workflow-runs.png"),
    ] {
        browser.goto(&format!("{base}{path}")).await.unwrap();
        wait_for_text(&browser, "h1", "").await;
        screenshot(&browser, name).await;
    }
    browser.close().await.unwrap();
}
