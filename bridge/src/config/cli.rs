//! The `bridge` binary's command line: subcommands, and which flag or variable a refused value came from.

use clap::{Args, Parser, Subcommand};

use super::Settings;

/// Command line of the `bridge` binary.
#[derive(Debug, Parser)]
#[command(
    name = "bridge",
    version,
    about = "Socket.IO gateway: events out as webhooks, REST in as emits"
)]
pub struct Cli {
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings; each also has an environment variable and a TOML key.
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// Parses `args` (the program name first) and the environment. A value clap refuses names
    /// where it came from: the flag when it was given on the command line, else its environment
    /// variable (clap's own message names the flag even for `BRIDGE_MAX_PAYLOAD=abc`).
    pub fn try_parse_args(args: Vec<std::ffi::OsString>) -> Result<Self, clap::Error> {
        Self::try_parse_from(&args).map_err(|err| match from_env(&err, &args) {
            Some(message) => clap::Error::raw(err.kind(), message),
            None => err,
        })
    }
}

/// When `err` refuses a value that came from an environment variable, its message with the
/// variable named instead of the flag (`invalid value 'abc' for BRIDGE_MAX_PAYLOAD (the
/// environment variable of --max-payload): …`).
fn from_env(err: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    // The argument as clap shows it: `--max-payload <MAX_PAYLOAD>`.
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = shown.split_whitespace().next()?;
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let env = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))?
        .get_env()?
        .to_str()?;
    // A flag on the command line beats its variable, so the value came from the variable only
    // when the flag is absent.
    let given = args.iter().skip(1).any(|arg| {
        let arg = arg.to_string_lossy();
        arg == flag
            || arg
                .strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    });
    if given {
        return None;
    }
    let message = err.render().to_string();
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    Some(message.replacen(
        &format!("'{shown}'"),
        &format!("{env} (the environment variable of {flag})"),
        1,
    ))
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the bridge (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a JWT that a namespace with a shared secret (HS256/384/512) accepts, for tests.
    Token(TokenArgs),
}

/// What `bridge token` signs.
#[derive(Debug, Clone, Args, PartialEq, Eq)]
pub struct TokenArgs {
    /// The namespace, e.g. /private; its secret is read from the store.
    #[arg(long)]
    pub namespace: String,
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Rooms the socket joins at connect (`rooms` claim), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rooms: Vec<String>,
    /// How long the token is valid (ms, s, m, h or d).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn env_and_flags_parse_through_clap() {
        // Every setting this reads is given as a flag, so exported variables (REDIS_URL,
        // DATABASE_URL…) cannot change the outcome; the env layer is tested through the binary
        // with a cleared environment (tests/cli.rs).
        let cli = Cli::try_parse_from([
            "bridge",
            "migrate",
            "--listen",
            ":1",
            "--adapter",
            "postgres",
            "--database-url",
            "sqlite://x.db",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(cli.settings.listen.as_deref(), Some(":1"));
        let err = Config::from_settings(cli.settings).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
    }
}
