//! Logs on stderr, as text for a person or as JSON lines for a collector
//! (`--log-format json`): one object per event with `ts` (RFC 3339, UTC,
//! milliseconds), `level`, `target`, `message` and the event's fields under
//! their own names.
//!
//! Must not write to stdout: commands print their results there.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;
use trawl_storage::export::civil_from_days;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: level from `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = match format {
        // Colours only for a person: journald and log files get plain text.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => json_subscriber(filter, std::io::stderr).try_init(),
    };
}

fn json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> tracing_subscriber::fmt::SubscriberBuilder<tracing_subscriber::fmt::format::DefaultFields, JsonLines, EnvFilter, W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
        .event_format(JsonLines)
}

/// The JSON-lines event format.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        obj.insert("ts".into(), Value::String(rfc3339_now()));
        obj.insert("level".into(), Value::String(meta.level().to_string()));
        obj.insert("target".into(), Value::String(meta.target().to_owned()));
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        obj.insert(
            "message".into(),
            fields.remove("message").unwrap_or(Value::String(String::new())),
        );
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|s| Value::String(s.name().to_owned())).collect();
            if !spans.is_empty() {
                obj.insert("spans".into(), Value::Array(spans));
            }
        }
        for (k, v) in fields {
            // A field may not overwrite the fixed keys.
            let key = if obj.contains_key(&k) { format!("field.{k}") } else { k };
            obj.insert(key, v);
        }
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields, keeping numbers and booleans typed.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.0.insert(field.name().into(), v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

fn rfc3339_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year), 12:34:56.789.
        assert_eq!(rfc3339(951_827_696, 789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(1_798_761_599, 5), "2026-12-31T23:59:59.005Z");
    }

    #[test]
    fn each_event_is_one_json_object_with_typed_fields() {
        let out = Captured::default();
        let sink = out.clone();
        let sub = json_subscriber(EnvFilter::new("debug"), move || sink.clone()).finish();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("crawl");
            let _in = span.enter();
            tracing::info!(
                nodes = 12u64,
                ratio = 0.5,
                paused = false,
                addr = "127.0.0.1:1",
                "bootstrap \"done\"\nnext"
            );
            tracing::warn!(target: "trawl::status", level = "x", "second");
            tracing::trace!("filtered out");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "bootstrap \"done\"\nnext");
        assert_eq!(first["nodes"], 12);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["paused"], false);
        assert_eq!(first["addr"], "127.0.0.1:1");
        assert_eq!(first["spans"], serde_json::json!(["crawl"]));
        assert!(first["ts"].as_str().unwrap().ends_with('Z'));
        let second = &lines[1];
        assert_eq!(second["target"], "trawl::status");
        assert_eq!(second["level"], "WARN");
        assert_eq!(second["field.level"], "x", "a field never replaces a fixed key");
    }
}
