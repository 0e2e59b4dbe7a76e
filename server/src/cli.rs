//! Command line of the `tollgate` binary (clap). One variant per command of
//! the contract; each runs in its own module under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `tollgate --version`: package version, git commit and build date.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TOLLGATE_GIT_COMMIT"),
    ", built ",
    env!("TOLLGATE_BUILD_DATE"),
    ")"
);

/// Top-level help: what Tollgate is and where to start.
const ABOUT: &str = "Tollgate lets AI agents query and change production systems without ever \
holding their credentials. Agents connect over MCP; every tool call is authenticated, checked \
against Cedar policies, paused for human approval where policy says so, run with credentials that only \
Tollgate holds, masked, and written to a tamper-evident audit log.";

const AFTER_HELP: &str = "\
Start here:
  tollgate demo                                   try it: a demo shop, policies and tokens
  tollgate check --config tollgate.toml           validate your config and policies
  tollgate serve --config tollgate.toml           serve agents over MCP (HTTP /mcp, or --stdio)
  tollgate approvals list --server URL --token T  review calls waiting for a human
  tollgate audit verify --config tollgate.toml    check the audit log's hash chain

Run `tollgate <command> --help` for a command's options.";

/// The `tollgate` command line.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version = VERSION,
    about = ABOUT,
    long_about = None,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Log format on stderr: text or json (default from [logging], else text).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--config FILE`.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Config file (TOML).
    #[arg(long, short = 'c', env = "TOLLGATE_CONFIG")]
    pub config: PathBuf,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over streamable HTTP at /mcp (REST at /api, UI at /ui), or over stdio.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Serve MCP over stdio; the caller's identity comes from [stdio].
        #[arg(long)]
        stdio: bool,
    },
    /// Self-contained demo on an embedded SQLite database; prints ready-to-use tokens.
    Demo {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the demo keeps its database, config, policies and audit log.
        #[arg(long, default_value = "tollgate-demo")]
        data_dir: PathBuf,
    },
    /// Validate config and policies; exit 1 with file:line:col lines on error.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Mint an HS256 token (needs auth.hs256_secret) and print it alone on stdout.
    Token {
        #[command(flatten)]
        config: ConfigArg,
        /// Subject.
        #[arg(long)]
        sub: String,
        /// Comma-separated groups.
        #[arg(long, value_delimiter = ',', default_value = "")]
        groups: Vec<String>,
        /// Lifetime, e.g. 1h, 30m.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Policy tools: test cases (request → expected decision), print the Cedar schema.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Read and verify the audit log (list, show, replay, verify, checkpoint, export).
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Masking tools: classify the connections' columns by sampling them.
    Masking {
        /// What to do.
        #[command(subcommand)]
        command: MaskingCommand,
    },
    /// Review calls waiting for human approval (list, show, approve, deny).
    Approvals {
        /// What to do.
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
}

/// `tollgate policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run policy test cases (request → expected decision).
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// Case files (.json/.jsonl) or folders; default: the policy dir's tests/.
        cases: Vec<PathBuf>,
    },
    /// Print the Cedar schema policies are validated against, as Cedar schema text.
    ///
    /// The schema is the core's fragment (User, Group, Connection, Audit,
    /// "connect", "audit:read", "unmask") combined with the fragment of every
    /// tool family in this build (e.g. SQL: Table, Function, "sql:*"). It is the
    /// same for every config: policies are validated against all families, so
    /// one policy folder works with any config. Save it for the cedar CLI
    /// (`cedar validate --schema tollgate.cedarschema --policies p.cedar`) or
    /// an editor.
    #[command(after_help = "Example:\n  tollgate policy schema > tollgate.cedarschema")]
    Schema {
        /// Config file (TOML); optional. When given it must load, as for
        /// `check`; the schema does not depend on it.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
}

/// `tollgate masking ...`.
#[derive(Debug, Subcommand)]
pub enum MaskingCommand {
    /// Sample every connection's columns now and print the sensitive ones.
    ///
    /// Runs what `serve` runs at start and every `[masking.classification]
    /// interval`, and prints per connection the columns found sensitive: type
    /// and hits/sampled, never a value. The run is recorded in the audit log.
    /// Exit 1 when a connection failed.
    #[command(after_help = "Example:\n  tollgate masking classify --config tollgate.toml")]
    Classify {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `tollgate audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List recent events.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// At most this many (newest first).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only this decision (`denied` and `allowed` are accepted for deny and allow).
        #[arg(long, value_enum, ignore_case = true)]
        decision: Option<Decision>,
    },
    /// Show one event as JSON.
    Show {
        /// Event id, or the seq number `audit list` prints.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write an event's terminal recording (SSH output, asciicast v2) to stdout.
    ///
    /// The stored file is checked against the sha256 and size the event
    /// records before anything is written; exit 1 when the event has no
    /// recording or it is missing or changed. Piped or redirected, the
    /// output is the stored file byte for byte (`asciinema play` reads it);
    /// on a terminal, characters that could drive it are written as JSON
    /// escapes (the same text once parsed).
    #[command(
        after_help = "Example:\n  tollgate audit replay 42 --config tollgate.toml > call-42.cast"
    )]
    Replay {
        /// Event id, or the seq number `audit list` prints.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check the hash chain; exit 1 on any break.
    ///
    /// With --checkpoint, also prove the store still holds, unchanged,
    /// everything a signed checkpoint covers (which the chain alone cannot:
    /// deleting the newest events and rewinding the head leaves a shorter
    /// chain that verifies). The checkpoint must be signed by
    /// audit.checkpoint_key of the config (its private key, or only its
    /// public key); exit 1 when the signature is not that key's or does not
    /// match, when the store's chain ends before the checkpoint's seq, or
    /// when the event at that seq is not the one signed.
    #[command(
        after_help = "Examples:\n  tollgate audit verify --config tollgate.toml\n  tollgate audit verify --config tollgate.toml --checkpoint /mnt/anchor/checkpoint-00000000000000001234-20261207T140000.000000Z.json"
    )]
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// A checkpoint file (`tollgate audit checkpoint`, or written by
        /// `serve` into audit.checkpoint_dir); repeat to check several.
        #[arg(long, value_name = "CP")]
        checkpoint: Vec<PathBuf>,
    },
    /// Sign the chain head now and write it to audit.checkpoint_dir (and
    /// POST it to audit.checkpoint_webhook); prints the file's path.
    ///
    /// The whole chain is verified first: a broken chain is not signed (exit
    /// 1). Keep checkpoint files off the host that holds the store: whoever
    /// can rewrite the store must not be able to rewrite them.
    #[command(after_help = "Example:\n  tollgate audit checkpoint --config tollgate.toml")]
    Checkpoint {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Export every event.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
    },
}

/// A recorded decision, as `--decision` of `audit list` takes it. The words
/// results use (`denied`, `allowed`, `errored`) are accepted as synonyms, so a
/// filter never silently matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    /// Allowed by policy.
    #[value(alias = "allowed")]
    Allow,
    /// Denied by policy or by a guard.
    #[value(alias = "denied")]
    Deny,
    /// Paused for human approval.
    Pending,
    /// Failed before a decision.
    #[value(alias = "errored")]
    Error,
}

impl Decision {
    /// The word stored in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Pending => "pending",
            Decision::Error => "error",
        }
    }
}

/// `tollgate approvals ...`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals (pending by default).
    List {
        #[command(flatten)]
        remote: Remote,
        /// pending, approved, denied, expired, cancelled, executed, failed, or all.
        #[arg(long, default_value = "pending")]
        state: String,
    },
    /// Show one approval.
    Show {
        /// Approval id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve a call.
    Approve {
        /// Approval id.
        id: String,
        #[command(flatten)]
        remote: Remote,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Print the server's JSON answer instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Deny a call (a reason is required).
    Deny {
        /// Approval id.
        id: String,
        #[command(flatten)]
        remote: Remote,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Print the server's JSON answer instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// Where the REST API is and who is calling.
#[derive(Debug, Args, Clone)]
pub struct Remote {
    /// Server base URL, e.g. http://127.0.0.1:8080 (default: from --config).
    #[arg(long, env = "TOLLGATE_SERVER")]
    pub server: Option<String>,
    /// Config file whose server.public_url (else server.listen) is the
    /// server, when --server is not given.
    #[arg(long, short = 'c', env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bearer token of the reviewer.
    #[arg(long, env = "TOLLGATE_TOKEN", hide_env_values = true)]
    pub token: String,
}
