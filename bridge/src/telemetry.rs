//! Tracing setup: human-readable logs to stderr, filtered by `RUST_LOG`, each line starting with
//! the node id so that the logs of several nodes can be read together.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(filter: &str, node_id: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(WithNode {
            node: format!("node={node_id} "),
            inner: Format::default(),
        })
        .try_init();
}

/// The default format, after `node=<id> `.
struct WithNode {
    node: String,
    inner: Format,
}

impl<S, N> FormatEvent<S, N> for WithNode
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&self.node)?;
        self.inner.format_event(ctx, writer, event)
    }
}
