//! The `bridge` binary: parse config, init telemetry, build the application, run until a signal.

use std::process::ExitCode;

use bridge::config::{Cli, Command, Config};
use bridge::{Application, app, shutdown, telemetry, token};

fn main() -> ExitCode {
    let cli = Cli::try_parse_args(std::env::args_os().collect()).unwrap_or_else(|err| err.exit());
    let config = match Config::load(cli.settings) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.rust_log, &config.node_id);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One clear line, whatever the logging setup.
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Migrate => {
            app::connect_store(&config).await?;
            tracing::info!("migrations applied");
        }
        Command::Token(args) => {
            let store = app::connect_store(&config).await?;
            // Only the token on stdout, so that `TOKEN=$(bridge token …)` captures it.
            println!("{}", token::mint(&store, &args).await?);
        }
        Command::Serve => {
            // Signals are listened to from before the start: one that comes while the node
            // starts (migrations, the bootstrap's lock) ends it there.
            let mut stop = Box::pin(shutdown::signal());
            let app = tokio::select! {
                app = Application::build(config) => app?,
                () = &mut stop => {
                    tracing::info!("stopped while starting");
                    return Ok(());
                }
            };
            app.run_until(stop).await?;
        }
    }
    Ok(())
}
