//! The command line: every command, flag and environment variable, with its help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

#[derive(Debug, Parser)]
#[command(name = "tidings", version, about = "OAuth 2.0 email delivery for appliances", propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The data directory (database, key file).
    #[arg(long, global = true, env = "TIDINGS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL database shared with other nodes (postgres://USER:PASSWORD@HOST:PORT/DATABASE), instead of
    /// the SQLite file in the data directory; the key file stays in the data directory (docs/postgresql.md).
    #[arg(long, global = true, env = "TIDINGS_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// The key sealing stored secrets, in base64, instead of the data directory's key file.
    #[arg(long, global = true, env = "TIDINGS_SECRET_KEY", hide_env_values = true, value_name = "BASE64")]
    pub secret_key: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "TIDINGS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter, such as `info` or `tidings_server=debug` (default: info for serve, warn otherwise).
    #[arg(long, global = true, env = "TIDINGS_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: database, key file (0600) and the first Administrator account.
    Init(InitArgs),
    /// Run the daemon (initialising the data directory on first start).
    Serve(Box<ServeArgs>),
    /// Show and change the email configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show the audit log: who changed what, and when.
    Audit(AuditArgs),
    /// Walk the path a message takes (the relay's name, TCP, TLS, what it offers, the token, AUTH, MAIL FROM) and
    /// stop at the first step that fails, saying what to change. Nothing is sent.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Also send a whole test message to this address, once every step passed.
        #[arg(long, value_name = "ADDRESS")]
        send_to: Option<String>,
    },
    /// Print the shell completions for bash, zsh or fish (the Debian package installs them).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (tidings.1 and one per command, tidings-serve.1 …) into a directory.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Copy the data directory into one archive while the daemon runs: the database (SQLite's online backup)
    /// and the key file. With PostgreSQL, only the key file (the database is pg_dump's: docs/operations.md).
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore an archive of `tidings backup` into an empty data directory, checking that its key opens the
    /// secrets it seals before saying done.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The credentials in use that end on a known date (the client secret or key, the certificates, each
    /// authorization's refresh token if left unused), soonest first.
    Expiries {
        #[arg(long)]
        json: bool,
    },
    /// Queue a message to the given recipients, from the configured sender.
    Send(SendArgs),
    /// Inspect and manage the outbox.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Manage bearer tokens for the API.
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCommand),
    /// Sign Tidings in with the OAuth provider, and see the token's status.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Report events (failover monitoring) and see what was mailed to the admin contacts.
    #[command(subcommand)]
    Event(EventCommand),
    /// Device accounts of the SMTP submission gateway (what printers and scanners authenticate as).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// This node in a cluster: primary, backup and traffic nodes (docs/cluster.md).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The database as a whole: copy it to PostgreSQL, or back to SQLite (docs/postgresql.md).
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the whole store (secrets still sealed) to another database, and check that every row arrived.
    Copy {
        /// The target: `postgres://USER:PASSWORD@HOST:PORT/DATABASE`, or an SQLite file (a directory: its
        /// `tidings.db`).
        #[arg(long, value_name = "URL|FILE")]
        to: String,
        /// Replace what the target holds (refused without it when the target is not empty).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// On the primary (a standalone node becomes it): make a one-time join code for a new node.
    AddNode {
        /// The new node's name.
        name: String,
        /// backup (takes over when the primary fails) or traffic.
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// How long the code works.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
        expires: std::time::Duration,
        /// This node's name when it becomes the primary by this command (a standalone node; default: the host
        /// name).
        #[arg(long, value_name = "NAME")]
        primary_name: Option<String>,
    },
    /// On a new node: join the primary at URL (its cluster listener, https://HOST:PORT) with the code add-node
    /// printed there.
    Join {
        url: String,
        code: String,
        /// This node's own cluster address (https://HOST:PORT of its serve --cluster-listen).
        #[arg(long, value_name = "URL")]
        advertise: String,
    },
    /// This node's role, epoch, primary and last sync.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The nodes this node knows: role, version, last contact.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// On the primary: remove a node (or a join code not used yet).
    Remove { name: String },
    /// On a backup: become the primary now, with a higher epoch (the old primary follows it once it sees it).
    Promote,
    /// Leave the cluster: this node becomes standalone with what it holds now (nothing is reset). On the primary,
    /// remove the node too (`remove NAME`).
    Leave,
    /// On a primary: follow the primary of a higher epoch that a known node reports (after a promotion
    /// elsewhere); refused when there is none.
    Demote,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a device account; the password comes from --password-file, or standard input.
    Add {
        name: String,
        /// An address the device may send as (repeatable; used by gateway.sender_policy=allow_user).
        #[arg(long = "address", value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Read the password from this file (first line) instead of standard input.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// List device accounts (never their passwords).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a device account.
    Remove { id: i64 },
    /// Connect a device account's own mailbox with OAuth (gateway.sender_policy=login_user): sign in to the
    /// provider as the account's first address. The account can do the same itself on the "My mailbox" page.
    Connect {
        id: i64,
        /// Use the device-code flow (Microsoft; not for Gmail).
        #[arg(long)]
        device_code: bool,
    },
    /// Delete the token of a device account's own mailbox.
    Disconnect { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Record an event; the daemon mails it to the admin contacts (at most once per kind and node per
    /// admin.repeat_window, counting repeats).
    Emit {
        /// The event kind, such as failover.takeover (`tidings event kinds` lists them).
        kind: String,
        /// The node the event is about (default: this host's name).
        #[arg(long)]
        node: Option<String>,
        /// A detail to include, as key=value (repeatable): --detail primary_version=7.2.
        #[arg(long = "detail", value_name = "KEY=VALUE")]
        details: Vec<String>,
    },
    /// List the event kinds with their severity.
    Kinds {
        #[arg(long)]
        json: bool,
    },
    /// List events, newest first, with what became of their mail.
    List {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OauthCommand {
    /// Sign in with the provider (authorization code with PKCE). Prints the address to open; the browser comes
    /// back to the running daemon at /login/smtp-verification, or, with --paste, you paste the address the
    /// browser ended on.
    Login {
        /// Read the address the browser ended on (or the code) from standard input, for browsers that cannot
        /// reach Tidings.
        #[arg(long, conflicts_with = "device")]
        paste: bool,
        /// Use the device-code flow: open the shown address on any device and enter the code (Microsoft; not
        /// for Gmail, which Google allows only with the authorization-code flow).
        #[arg(long, conflicts_with = "client_credentials")]
        device: bool,
        /// Authorize app-only sending with the client-credentials grant (Microsoft: a specific tenant, the client
        /// secret, and the mailbox access an Exchange administrator granted); no one signs in.
        #[arg(long, conflicts_with = "paste")]
        client_credentials: bool,
        /// How long to wait for the browser to come back to the daemon.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// The authorization's status: account, when acquired and last refreshed, and what to do when it failed.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check that the provider's token endpoint can be reached (through oauth.proxy_url, with the TLS settings).
    Check,
    /// Delete the stored authorization (its refresh token).
    Revoke,
    /// What the tenant's administrators must set up, with this configuration's values filled in: the Entra app
    /// registration and the Exchange Online PowerShell (Microsoft), or the console steps (Google).
    SetupScript {
        /// `delegated` (a person signs in) or `app-only` (no one does); by default, what the configuration and
        /// the stored authorization point to.
        #[arg(long, value_parser = ["delegated", "app-only"])]
        mode: Option<String>,
    },
    /// The client's own certificate, which Microsoft Entra takes instead of a client secret
    /// (oauth.client_credential=certificate).
    #[command(subcommand)]
    Certificate(CertificateCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Make an RSA key pair and a self-signed certificate for it, kept sealed; prints the certificate to upload
    /// to the app registration (Certificates & secrets > Certificates).
    Create {
        /// How long the certificate is valid, in days (Entra takes any; 2 years is usual).
        #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Replace the certificate kept now (the app registration then needs the new one).
        #[arg(long)]
        force: bool,
    },
    /// Keep a certificate and RSA key of your own: one PEM file, the certificate first, then the key (PKCS#8).
    Import {
        file: PathBuf,
        /// Replace the certificate kept now.
        #[arg(long)]
        force: bool,
    },
    /// Print the certificate (PEM; never the key), or with --json its thumbprints and dates too.
    Show {
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    pub fn is_daemon(&self) -> bool {
        matches!(self, Command::Serve(_))
    }

    /// How many threads run the command's async work: `serve --workers`, else one fewer than the CPUs (at least
    /// one).
    pub fn workers(&self) -> usize {
        match self {
            Command::Serve(args) if let Some(n) = args.workers => usize::from(n),
            _ => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Name of the first Administrator account.
    #[arg(long, default_value = "admin", value_name = "NAME")]
    pub admin_user: String,
    /// Read its password from this file (first line); otherwise one is generated and printed once.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Use the key in this file (another node's `secret.key`, base64) instead of a new one: the nodes that share
    /// one database must hold the same key.
    #[arg(long, value_name = "FILE")]
    pub join_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the HTTP interface.
    #[arg(long, env = "TIDINGS_LISTEN", default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Threads for the daemon's network work (HTTP, the gateway's sessions, delivery). Default: one fewer than
    /// the CPUs, at least one, as SQLite writes on a thread of its own.
    #[arg(long, env = "TIDINGS_WORKERS", value_parser = clap::value_parser!(u16).range(1..), value_name = "N")]
    pub workers: Option<u16>,
    /// How often to pick up configuration changes made by the CLI or another process. Default 2s; 30s with
    /// --database-url, where the database tells every node of a change at once.
    #[arg(long, env = "TIDINGS_CONFIG_POLL_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub config_poll_interval: Option<Duration>,
    /// The longest the delivery engine waits before looking for due messages (it also wakes for every message
    /// the daemon accepts). Default 1s; 5s with --database-url, where other nodes' new messages wake it.
    #[arg(long, env = "TIDINGS_QUEUE_POLL_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub queue_poll_interval: Option<Duration>,
    /// How long delivery outcomes gather before one commit writes them all (a daemon that dies meanwhile
    /// delivers those messages again after its restart).
    #[arg(long, env = "TIDINGS_SETTLE_WINDOW", default_value = "20ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub settle_window: Duration,
    /// How often the daemon gives memory it freed back to the operating system (after a burst, the allocator
    /// would keep it for later); 0s never.
    #[arg(long, env = "TIDINGS_MEMORY_TRIM_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub memory_trim_interval: Duration,
    /// The longest the notifier waits before looking for events recorded by other processes (the CLI) and at
    /// the daily notice's slot (it also wakes for every event the API receives). Default 2s; 20s with
    /// --database-url, where other nodes' events wake it.
    #[arg(long, env = "TIDINGS_NOTIFY_POLL_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub notify_poll_interval: Option<Duration>,
    /// Listen for the other nodes of a cluster on this address (HTTPS with the node's own certificate; see
    /// docs/cluster.md). No cluster listener without it.
    #[arg(long, env = "TIDINGS_CLUSTER_LISTEN", value_name = "ADDR:PORT")]
    pub cluster_listen: Option<std::net::SocketAddr>,
    /// How long a backup or traffic node's request to its primary waits for a change (a long poll).
    #[arg(long, env = "TIDINGS_CLUSTER_WAIT", default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub cluster_wait: Duration,
    /// The longest pause between attempts while the primary cannot be reached (doubling from 1 s).
    #[arg(long, env = "TIDINGS_CLUSTER_RETRY_MAX", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub cluster_retry_max: Duration,
    /// A command run (`sh -c`) when this node becomes the cluster's primary, for example to take the shared
    /// address (`ip addr add 192.0.2.10/24 dev eth0`). TIDINGS_CLUSTER_EPOCH holds the new epoch.
    #[arg(long, env = "TIDINGS_CLUSTER_ON_PROMOTE", value_name = "COMMAND")]
    pub cluster_on_promote: Option<String>,
    /// A command run when this node stops being the primary (another of a higher epoch exists).
    #[arg(long, env = "TIDINGS_CLUSTER_ON_DEMOTE", value_name = "COMMAND")]
    pub cluster_on_demote: Option<String>,
    /// The longest a promote or demote command may run before it is stopped.
    #[arg(long, env = "TIDINGS_CLUSTER_HOOK_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub cluster_hook_timeout: Duration,
    /// This node's name in message leases (default: the host name).
    #[arg(long, env = "TIDINGS_NODE_ID", value_name = "NAME")]
    pub node_id: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. Plain HTTP without it.
    #[arg(long, env = "TIDINGS_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TIDINGS_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Consecutive failed sign-ins that lock an account.
    #[arg(long, env = "TIDINGS_LOGIN_MAX_FAILURES", default_value_t = 5, value_name = "N")]
    pub login_max_failures: u32,
    /// Failed sign-ins from one client address (whatever the account) after which the address is refused for
    /// --login-lockout.
    #[arg(long, env = "TIDINGS_LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = 20, value_name = "N")]
    pub login_max_failures_per_address: u32,
    /// How long a locked account stays locked.
    #[arg(long, env = "TIDINGS_LOGIN_LOCKOUT", default_value = "15m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub login_lockout: Duration,
    /// A web session unused this long ends.
    #[arg(long, env = "TIDINGS_SESSION_IDLE", default_value = "8h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub session_idle: Duration,
    /// A web session ends this long after sign-in, used or not.
    #[arg(long, env = "TIDINGS_SESSION_MAX", default_value = "7d", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub session_max: Duration,
    /// Password checks (web sign-ins, gateway AUTH) computed at once; each takes about 19 MB and tens of
    /// milliseconds of CPU while it runs, so this bounds their memory whatever the number of attempts.
    #[arg(long, env = "TIDINGS_PASSWORD_CHECKS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..), value_name = "N")]
    pub password_checks: u16,
    /// How long a password check waits for its turn before it is refused (gateway `421`, web `429`).
    #[arg(long, env = "TIDINGS_PASSWORD_CHECK_WAIT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub password_check_wait: Duration,
    /// With --database-url: how often this node tells the others it is there (a node silent for three is taken
    /// for gone, and its name may be taken by another).
    #[arg(long, env = "TIDINGS_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Duration,
    /// How often the SMTP gateway looks again at its certificate files (reloading them when they changed) and
    /// tries again a listener it could not bind.
    #[arg(long, env = "TIDINGS_GATEWAY_RECHECK_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub gateway_recheck_interval: Duration,
    /// Where this node's gateway listens, instead of the configuration's `gateway.listen`, while that key turns
    /// the listener on: for nodes that share one database and one host.
    #[arg(long, env = "TIDINGS_GATEWAY_LISTEN", value_name = "ADDR:PORT")]
    pub gateway_listen: Option<std::net::SocketAddr>,
    /// Likewise for `gateway.tls_listen` (implicit TLS).
    #[arg(long, env = "TIDINGS_GATEWAY_TLS_LISTEN", value_name = "ADDR:PORT")]
    pub gateway_tls_listen: Option<std::net::SocketAddr>,
    /// How long an HTTP client may take to send a request's headers.
    #[arg(long, env = "TIDINGS_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub http_header_timeout: Duration,
    /// How long an HTTP client may take to send a request's body.
    #[arg(long, env = "TIDINGS_HTTP_BODY_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub http_body_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// A recipient (repeat for more).
    #[arg(long, value_name = "ADDRESS")]
    pub to: Vec<String>,
    #[arg(long, value_name = "ADDRESS")]
    pub cc: Vec<String>,
    #[arg(long, value_name = "ADDRESS")]
    pub bcc: Vec<String>,
    #[arg(long, default_value = "")]
    pub subject: String,
    /// The text body; read from standard input when absent.
    #[arg(long)]
    pub body: Option<String>,
    /// An HTML alternative, from this file.
    #[arg(long, value_name = "FILE")]
    pub html_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List messages, newest first.
    List {
        /// Only this status: queued, sending, deferred, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one message with its delivery log.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Queue a failed or deferred message again, now.
    Retry { id: i64 },
    /// Delete every delivered or failed message.
    Purge {
        /// delivered or failed.
        #[arg(long)]
        status: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create a token and print it (once; only its hash is kept).
    Create {
        #[arg(long)]
        name: String,
        /// administrator, network_administrator or viewer.
        #[arg(long)]
        role: String,
    },
    /// List tokens (never their values).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration in force (secrets only as set / not set).
    Show {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change fields: `tidings config set smtp.host=smtp.example.com smtp.port=587`. An empty value clears a
    /// field. All changes are validated together; nothing is saved if any is wrong.
    Set {
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
    },
    /// Set a secret (smtp.password, oauth.client_secret) from standard input or a file, keeping it out of the
    /// process list and shell history.
    SetSecret {
        /// smtp.password or oauth.client_secret.
        key: String,
        /// Read the value from this file (first line) instead of standard input.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// List every configuration key with its meaning.
    Keys,
    /// Check the configuration in force (or an export file, without importing it).
    Validate {
        /// An export file to check instead.
        file: Option<PathBuf>,
    },
    /// Fill the OAuth client from the JSON file Google Cloud console downloads (installed or web client).
    ImportGoogleClient { file: PathBuf },
    /// Send as a Google Workspace service account with domain-wide delegation, from its JSON key file: the key is
    /// sealed, and `tidings oauth login --client-credentials` then authorizes app-only sending.
    ImportGoogleServiceAccount { file: PathBuf },
    /// Write the configuration as JSON (to standard output, or a file); secrets only with --with-secrets.
    Export {
        /// Include secret values in clear text. Keep such a file safe.
        #[arg(long)]
        with_secrets: bool,
        /// Write to this file (created readable by you only) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Replace the configuration with an exported one (secrets missing from the file are kept).
    Import { file: PathBuf },
    /// Send a test email to the admin contacts and report what the relay answered (the daemon sends it; this
    /// waits up to admin.test_email_wait).
    Test,
    /// Show the certificate the relay presents (after STARTTLS where configured): subject, issuer, validity,
    /// names and SHA-256 fingerprint, trusted or not. Nothing is authenticated or sent.
    FetchCertificate {
        /// Trust this very certificate from now on: add its fingerprint to tls.pinned_certificate. Compare the
        /// fingerprint with the relay's own first.
        #[arg(long)]
        pin: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// As JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tidings").chain(args.iter().copied()))
    }

    #[test]
    fn the_daemon_runs_on_the_workers_asked_for_and_at_least_one_by_default() {
        assert_eq!(parse(&["serve", "--workers", "3"]).unwrap().command.workers(), 3);
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(parse(&["serve"]).unwrap().command.workers(), (cpus - 1).max(1));
        let err = parse(&["serve", "--workers", "0"]).unwrap_err().to_string();
        assert!(err.contains("--workers") && err.contains("0"), "{err}");
    }
}
