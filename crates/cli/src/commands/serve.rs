//! `tidings serve`: take the data directory's lock, initialise it on first start, listen, and run until a
//! signal.

use super::data_dir;
use crate::cli::{Global, ServeArgs};
use anyhow::{Context, Result};
use std::{io::IsTerminal, process::ExitCode};
use tidings_app::{App, Error, InitOptions, data_dir::DataDir};
use tokio_util::sync::CancellationToken;

pub async fn run(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    let dir = data_dir(global)?;
    // The lock comes first: a second daemon must not even initialise.
    let _lock = dir.lock()?;
    let app = match App::open(dir.clone(), global.secret_key.as_deref()).await {
        Ok(app) => app,
        Err(Error::NotInitialised(_)) => first_start(&dir, global).await?,
        Err(e) => return Err(e.into()),
    };
    let app = app.with_password_checks(tidings_app::password_checks::CheckOptions {
        concurrent: usize::from(args.password_checks),
        wait: args.password_check_wait,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; choose another --listen address", args.listen))?;
    let shutdown = CancellationToken::new();
    tidings_server::shutdown::cancel_on_signals(shutdown.clone())?;
    // Where the database tells of other nodes' changes, polls are only a safety net, kept rare so that an idle
    // node asks the database about once a second.
    let shared = dir.store().is_shared();
    let poll = |given: Option<std::time::Duration>, alone: u64, sharing: u64| {
        given.unwrap_or(std::time::Duration::from_secs(if shared { sharing } else { alone }))
    };
    let mut engine = tidings_server::EngineOptions {
        poll_interval: poll(args.queue_poll_interval, 1, 5),
        settle_window: args.settle_window,
        ..Default::default()
    };
    if let Some(node) = &args.node_id {
        engine.node = node.clone();
    }
    let options = tidings_server::Options {
        config_poll_interval: poll(args.config_poll_interval, 2, 30),
        engine,
        notifier: tidings_server::notifier::NotifierOptions { poll_interval: poll(args.notify_poll_interval, 2, 20) },
        sign_in: tidings_server::SignInPolicy {
            max_failures: args.login_max_failures.max(1),
            lockout: args.login_lockout,
            idle: args.session_idle,
            absolute: args.session_max,
            max_failures_per_address: args.login_max_failures_per_address.max(1),
        },
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| tidings_server::tls::TlsFiles { cert, key }),
        http: tidings_server::serve::HttpTimeouts {
            header_read: args.http_header_timeout,
            body: args.http_body_timeout,
        },
        gateway_recheck: args.gateway_recheck_interval,
        gateway_places: tidings_server::GatewayPlaces {
            listen: args.gateway_listen.map(|a| a.to_string()),
            tls_listen: args.gateway_tls_listen.map(|a| a.to_string()),
        },
        heartbeat: args.heartbeat_interval.max(std::time::Duration::from_millis(100)),
        cluster_listen: args.cluster_listen,
        follow: tidings_cluster::follow::FollowOptions {
            wait: args.cluster_wait,
            retry_max: args.cluster_retry_max,
            ..Default::default()
        },
        watch: tidings_cluster::watch::WatchOptions {
            own: None,
            on_promote: args.cluster_on_promote,
            on_demote: args.cluster_on_demote,
            hook_timeout: args.cluster_hook_timeout,
        },
        ..Default::default()
    };
    crate::allocator::trim_every(args.memory_trim_interval);
    tidings_server::run(listener, app, options, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Initialises the data directory, leaving the generated admin password in a private file and saying where.
async fn first_start(dir: &DataDir, global: &Global) -> Result<App> {
    let options =
        InitOptions { key_from_env: global.secret_key.clone(), admin_username: "admin".into(), ..Default::default() };
    let done = App::init(dir.clone(), options).await?;
    let Some(password) = done.generated_password else {
        tracing::info!(data_dir = %dir.root().display(), database = %dir.store(), "joined a shared database");
        return Ok(done.app);
    };
    let file = dir.initial_password_file();
    tidings_app::data_dir::write_private(&file, format!("{}\n", password.expose()).as_bytes())?;
    tracing::info!(data_dir = %dir.root().display(), password_file = %file.display(), "initialised a new data directory");
    let mut banner = format!("\nTidings initialised a new data directory at {}\n", dir.root().display());
    banner.push_str("  administrator account: admin\n");
    if std::io::stderr().is_terminal() {
        banner.push_str(&format!("  password: {}\n", password.expose()));
    }
    banner.push_str(&format!(
        "  the password is in {} (readable by you only); delete that file once you have signed in\n",
        file.display()
    ));
    eprintln!("{banner}");
    Ok(done.app)
}
