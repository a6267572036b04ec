//! A Tidings daemon in the test's process, on 127.0.0.1:0, with short timings, and an HTTP client for it.

#![allow(dead_code, clippy::unwrap_used)] // test support: a failed step is a failed test

use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tidings_app::{App, InitOptions, data_dir::DataDir};
use tidings_core::account::Role;
use tidings_server::{EngineOptions, Options, notifier::NotifierOptions};
use tidings_testkit::SmtpPeer;
use tokio_util::sync::CancellationToken;

/// Polls `check` every 50 ms until it gives a value; after `within`, fails the test with `what` and what
/// `check` last saw.
pub async fn eventually<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "{what}: {seen}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The password of the accounts `Tidings::signed_in` makes.
#[allow(dead_code)] // not every test binary looks at pages
pub const ACCOUNT_PASSWORD: &str = "a-test-account-password-9";

pub struct Tidings {
    pub base: String,
    pub app: App,
    /// A network administrator's token.
    pub token: String,
    /// A viewer's token.
    pub viewer: String,
    /// An administrator's token.
    pub admin: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Short timings, so that tests see changes soon.
pub fn test_options() -> Options {
    Options {
        config_poll_interval: Duration::from_millis(100),
        engine: EngineOptions {
            node: "test-node".into(),
            poll_interval: Duration::from_millis(200),
            // Short, so that tests see new connections (and new authentications) soon.
            idle_timeout: Duration::from_millis(200),
            ..Default::default()
        },
        notifier: NotifierOptions { poll_interval: Duration::from_millis(100) },
        gateway_recheck: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Configuration for delivering to `peer` quickly: 1 s first retry, short timeouts.
pub fn relay(peer: &SmtpPeer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut edits: Vec<(String, String)> = vec![
        ("sender".into(), "alerts@example.com".into()),
        ("smtp.host".into(), "127.0.0.1".into()),
        ("smtp.port".into(), peer.port.to_string()),
        ("delivery.retry_first".into(), "1s".into()),
        ("delivery.retry_max".into(), "2s".into()),
        ("delivery.relay_backoff_first".into(), "1s".into()),
        ("delivery.relay_backoff_max".into(), "2s".into()),
        ("delivery.timeout".into(), "5s".into()),
        ("delivery.lease".into(), "15s".into()),
    ];
    match &peer.ca_file {
        Some(ca) => {
            edits.push(("smtp.encryption".into(), "starttls".into()));
            edits.push(("tls.ca_file".into(), ca.display().to_string()));
        }
        None => edits.push(("smtp.encryption".into(), "none".into())),
    }
    edits.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    edits
}

impl Tidings {
    pub async fn start(edits: Vec<(String, String)>) -> Self {
        Self::start_with(edits, test_options()).await
    }

    pub async fn start_with(edits: Vec<(String, String)>, options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let init = InitOptions { admin_username: "admin".into(), ..Default::default() };
        let app = App::init(DataDir::new(dir.path()), init).await.unwrap().app;
        if !edits.is_empty() {
            app.update("test", &edits).await.unwrap();
        }
        let token = app
            .create_api_token("test", "operator", Role::NetworkAdministrator)
            .await
            .unwrap()
            .token
            .expose()
            .to_owned();
        let viewer = app.create_api_token("test", "viewer", Role::Viewer).await.unwrap().token.expose().to_owned();
        let admin = app.create_api_token("test", "admin", Role::Administrator).await.unwrap().token.expose().to_owned();
        Self::serve(dir, app, [token, viewer, admin], options).await
    }

    async fn serve(dir: tempfile::TempDir, app: App, [token, viewer, admin]: [String; 3], options: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn({
            let (app, shutdown) = (app.clone(), shutdown.clone());
            async move { tidings_server::run(listener, app, options, shutdown).await.unwrap() }
        });
        Self { base, app, token, viewer, admin, client: reqwest::Client::new(), shutdown, handle, _dir: dir }
    }

    /// Stops the daemon and starts another on the same data directory (tokens stay valid).
    pub async fn restart(self) -> Self {
        self.shutdown.cancel();
        self.handle.await.unwrap();
        let app = App::open(DataDir::new(self._dir.path()), None).await.unwrap();
        Self::serve(self._dir, app, [self.token, self.viewer, self.admin], test_options()).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(&self.token), Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(&self.token), None).await
    }

    /// Submits a message, returning its id.
    pub async fn send(&self, subject: &str) -> i64 {
        let (status, body) = self
            .post(
                "/api/v1/messages",
                serde_json::json!({"to": ["ops@example.com"], "subject": subject, "text": "hello"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Waits (up to 30 s) until message `id` has `status`, returning it.
    pub async fn wait_for_status(&self, id: i64, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut interval = tokio::time::interval(Duration::from_millis(25));
        loop {
            interval.tick().await;
            let (_, message) = self.get(&format!("/api/v1/messages/{id}")).await;
            if message["status"] == status {
                return message;
            }
            assert!(Instant::now() < deadline, "message {id} did not become {status}: {message:#}");
        }
    }

    /// Applies configuration edits and waits until the daemon runs with them.
    pub async fn reconfigure(&self, edits: &[(&str, &str)]) {
        let edits: Vec<(String, String)> = edits.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let saved = self.app.update("test", &edits).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut interval = tokio::time::interval(Duration::from_millis(25));
        loop {
            interval.tick().await;
            let (_, ready) = self.request(reqwest::Method::GET, "/readyz", None, None).await;
            if ready["config_revision"].as_i64() == Some(saved.revision) {
                return;
            }
            assert!(Instant::now() < deadline, "the daemon did not pick up revision {}", saved.revision);
        }
    }

    /// A page as a viewer account (made on the first call) sees it in the browser.
    #[allow(dead_code)] // not every test binary looks at pages
    pub async fn page_as_viewer(&self, path: &str) -> String {
        self.page_in(path, "en").await
    }

    /// A page as a viewer whose browser asks for `language` sees it.
    #[allow(dead_code)] // not every test binary looks at pages
    pub async fn page_in(&self, path: &str, language: &str) -> String {
        let client = self.signed_in("page-viewer", Role::Viewer, language).await;
        client.get(format!("{}{path}", self.base)).send().await.unwrap().text().await.unwrap()
    }

    /// A browser (cookies kept, redirects not followed) signed in as the account `name` of `role` (made on the
    /// first call), asking for pages in `language`.
    #[allow(dead_code)] // not every test binary looks at pages
    pub async fn signed_in(&self, name: &str, role: Role, language: &str) -> reqwest::Client {
        let password = tidings_core::secret::SecretString::new(ACCOUNT_PASSWORD);
        let _ = self.app.create_account("test", name, &password, role).await;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ACCEPT_LANGUAGE, language.parse().unwrap());
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        sign_in(self, &client, name, password.expose()).await;
        client
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

/// A browser: keeps cookies, does not follow redirects (the tests look at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value of `<input name="csrf" value="…">` or `<meta name="csrf-token" content="…">` in a page.
pub fn csrf_of(page: &str) -> String {
    for marker in ["name=\"csrf\" value=\"", "name=\"csrf-token\" content=\""] {
        if let Some(rest) = page.split(marker).nth(1) {
            return rest.split('"').next().unwrap().to_owned();
        }
    }
    panic!("no CSRF token in the page:\n{page}");
}

/// A form's answer as the browser shows it: a redirect (303, what every form that worked answers) followed with
/// the same cookies, or the page itself.
#[allow(dead_code)] // not every test binary posts forms
pub async fn shown(tidings: &Tidings, client: &reqwest::Client, answer: reqwest::Response) -> String {
    if answer.status() != reqwest::StatusCode::SEE_OTHER {
        return answer.text().await.unwrap();
    }
    let to = answer.headers()[reqwest::header::LOCATION].to_str().unwrap().to_owned();
    client.get(format!("{}{to}", tidings.base)).send().await.unwrap().text().await.unwrap()
}

pub async fn sign_in(tidings: &Tidings, client: &reqwest::Client, username: &str, password: &str) -> reqwest::Response {
    let page = client.get(format!("{}/login", tidings.base)).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", csrf_of(&page)),
        ("username", username.into()),
        ("password", password.into()),
        ("next", "/email-config".into()),
    ];
    client.post(format!("{}/login", tidings.base)).form(&form).send().await.unwrap()
}
