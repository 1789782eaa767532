//! `/crawl`: the crawl as the follower sees it (estimated counts, rates over
//! the last minute and hour, the fetch queue, the search index, the latest
//! exact counts) and `/crawl/chart.svg`, the last hour's growth drawn from
//! [`Live::samples`](crate::live::Live::samples).
//!
//! The page reloads itself every [`REFRESH_SECS`] with a `<meta>` refresh
//! (no script). The chart is an SVG image built here from numbers only: no
//! script, no style element or attribute, no link; colours are
//! presentation attributes.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use trawl_storage::summary::{classes, metadata_fraction};
use trawl_storage::{ContentClass, StoreStats};

use super::html::{count, datetime, rate, size, time_element};
use super::search::class_label;
use super::{document, page, Head, Nav, PAGE_CACHE};
use crate::http::{now_secs, Shared};
use crate::live::{Rates, Sample, EXACT_EVERY, SAMPLE_EVERY};

pub const REFRESH_SECS: u32 = 10;
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// What the page shows, read at once under the lock.
pub struct CrawlView {
    pub latest: Option<Sample>,
    pub minute: Rates,
    pub hour: Rates,
    pub exact: Option<(u64, StoreStats)>,
    pub documents: u64,
    pub serving_since: u64,
}

impl CrawlView {
    pub fn read(state: &crate::http::AppState) -> CrawlView {
        let live = state.live.lock().unwrap_or_else(|p| p.into_inner());
        CrawlView {
            latest: live.latest(),
            minute: live.rates(MINUTE),
            hour: live.rates(HOUR),
            exact: live.exact().cloned(),
            documents: state.index.len(),
            serving_since: state.started,
        }
    }
}

pub async fn handler(State(state): State<Shared>) -> Response {
    page(StatusCode::OK, render(&CrawlView::read(&state), now_secs()))
}

/// `/crawl/chart.svg`, or `?size=narrow` for phones.
pub async fn chart_handler(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let layout = if q.as_deref() == Some("size=narrow") {
        NARROW
    } else {
        WIDE
    };
    let samples: Vec<Sample> = {
        let live = state.live.lock().unwrap_or_else(|p| p.into_inner());
        live.samples().copied().collect()
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml")),
            (header::CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE)),
        ],
        chart(&samples, layout),
    )
        .into_response()
}

pub fn render(v: &CrawlView, now: u64) -> String {
    let mut m = String::new();
    let _ = write!(
        m,
        "<div class=\"page-head\"><h1>Crawl</h1><p class=\"muted\">Reloads every {REFRESH_SECS} s. \
         ≈ marks RocksDB's estimates, sampled every {} s; the exact counts are recounted every {} minutes.</p>\
         </div>\n<div class=\"cards\">\n",
        SAMPLE_EVERY.as_secs(),
        EXACT_EVERY.as_secs() / 60
    );
    let latest = v.latest.unwrap_or_default();
    let estimate = |n: u64| {
        if v.latest.is_some() {
            format!("≈ {}", count(n))
        } else {
            "…".to_owned()
        }
    };
    let growth = |per_s: fn(&Rates) -> f64| format!("{} over the last minute", per_second(v.minute, per_s));
    card(
        &mut m,
        "Infohashes",
        &estimate(latest.infohashes),
        &growth(|r| r.infohashes_per_s),
    );
    card(
        &mut m,
        "Torrents",
        &estimate(latest.torrents),
        &growth(|r| r.torrents_per_s),
    );
    card(
        &mut m,
        "Fetch queue",
        &estimate(latest.fetch_queue),
        "infohashes waiting for their metadata",
    );
    card(&mut m, "Search index", &count(v.documents), "torrents searchable");
    m.push_str("</div>\n");

    m.push_str(
        "<section class=\"panel chart\" aria-labelledby=\"chart-h\"><h2 id=\"chart-h\">Growth</h2>\
         <picture><source media=\"(max-width: 720px)\" srcset=\"/crawl/chart.svg?size=narrow\" \
         width=\"400\" height=\"314\"><img src=\"/crawl/chart.svg\" width=\"960\" height=\"340\" \
         alt=\"New infohashes and new torrents per minute over the last hour\"></picture></section>\n",
    );

    m.push_str("<section class=\"panel\" aria-labelledby=\"rates-h\"><h2 id=\"rates-h\">Rates</h2>");
    m.push_str(
        "<div class=\"table-wrap\"><table class=\"rates\"><thead><tr><th scope=\"col\"></th>\
         <th scope=\"col\" class=\"num\">Last minute</th><th scope=\"col\" class=\"num\">Last hour</th></tr></thead><tbody>\n",
    );
    for (label, per_s) in [
        ("New infohashes", (|r: &Rates| r.infohashes_per_s) as fn(&Rates) -> f64),
        ("New torrents", |r: &Rates| r.torrents_per_s),
    ] {
        let _ = writeln!(
            m,
            "<tr><th scope=\"row\">{label}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            per_second_over(v.minute, per_s, MINUTE),
            per_second_over(v.hour, per_s, HOUR)
        );
    }
    m.push_str("</tbody></table></div></section>\n");

    exact(&mut m, v.exact.as_ref(), now);
    let _ = write!(m, "<p class=\"muted small\">Serving since ");
    time_element(&mut m, v.serving_since, now);
    m.push_str(".</p>\n");
    document(
        "Crawl",
        Nav::Crawl,
        Head {
            refresh: Some(REFRESH_SECS),
            ..Head::default()
        },
        &m,
    )
}

fn card(out: &mut String, title: &str, big: &str, sub: &str) {
    let _ = writeln!(
        out,
        "<div class=\"card\"><h2>{title}</h2><p class=\"big\">{big}</p><p class=\"sub\">{sub}</p></div>"
    );
}

fn per_second(r: Rates, per_s: fn(&Rates) -> f64) -> String {
    if r.over_s == 0 {
        "…".to_owned()
    } else {
        format!("+{}/s", rate(per_s(&r)))
    }
}

/// The rate, and how long it was measured over when that is less than the window.
fn per_second_over(r: Rates, per_s: fn(&Rates) -> f64, window: Duration) -> String {
    if r.over_s == 0 {
        return "<span class=\"muted\">collecting samples</span>".to_owned();
    }
    let mut s = format!("{}/s", rate(per_s(&r)));
    if r.over_s + SAMPLE_EVERY.as_secs() < window.as_secs() {
        let _ = write!(s, "<span class=\"muted note\">over {}</span>", duration(r.over_s));
    }
    s
}

fn duration(secs: u64) -> String {
    if secs < 120 {
        format!("{secs} s")
    } else {
        format!("{} min", secs / 60)
    }
}

fn exact(out: &mut String, exact: Option<&(u64, StoreStats)>, now: u64) {
    out.push_str("<section class=\"panel\" aria-labelledby=\"exact-h\"><h2 id=\"exact-h\">Exact counts");
    let Some((at, s)) = exact else {
        out.push_str(
            "</h2><p class=\"muted\">Not counted yet: the first count starts with the server.</p></section>\n",
        );
        return;
    };
    out.push_str(" <span class=\"muted\">counted ");
    time_element(out, *at, now);
    out.push_str("</span></h2>\n<div class=\"split\"><dl class=\"facts compact\">\n");
    let fraction = metadata_fraction(s);
    for (label, value) in [
        ("Infohashes", count(s.infohashes)),
        ("Torrents", count(s.torrents)),
        ("With metadata", format!("{:.1} % of infohashes", fraction * 100.0)),
        ("Content", size(s.total_content_bytes)),
        ("Scrapes", count(s.scrapes)),
        ("Fetch queue", count(s.staged)),
        ("DHT nodes saved", count(s.nodes)),
        ("On disk", size(s.disk.total_bytes)),
    ] {
        let _ = writeln!(out, "<div><dt>{label}</dt><dd>{value}</dd></div>");
    }
    out.push_str("</dl>\n<table class=\"classes\"><caption>Torrents by class</caption><tbody>\n");
    let total = s.torrents.max(1) as f64;
    for (name, n) in classes(s) {
        let label = ContentClass::parse(name).map_or(name, class_label);
        let share = n as f64 / total;
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{label}</th><td class=\"num\">{}</td><td class=\"gauge\">\
             <meter min=\"0\" max=\"1\" value=\"{share:.4}\">{:.1} %</meter></td><td class=\"num share\">{:.1} %</td></tr>",
            count(n),
            share * 100.0,
            share * 100.0
        );
    }
    let _ = writeln!(
        out,
        "</tbody></table></div><p class=\"muted small\">As of {}.</p></section>",
        datetime(*at)
    );
}

/// The chart's geometry, in SVG user units: one for wide screens, one for phones.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub w: f64,
    pub h: f64,
    left: f64,
    right: f64,
    panel_h: f64,
    /// Top of each panel's plot area.
    panels: [f64; 2],
    axis_y: f64,
    max_ticks: u64,
}

pub const WIDE: Layout = Layout {
    w: 960.0,
    h: 340.0,
    left: 64.0,
    right: 20.0,
    panel_h: 110.0,
    panels: [36.0, 190.0],
    axis_y: 322.0,
    max_ticks: 6,
};
pub const NARROW: Layout = Layout {
    w: 400.0,
    h: 314.0,
    left: 44.0,
    right: 14.0,
    panel_h: 100.0,
    panels: [34.0, 184.0],
    axis_y: 302.0,
    max_ticks: 4,
};

const GRID: &str = "#e3e7ed";
const INK: &str = "#5b6675";
const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, Liberation Sans, sans-serif";
const INFOHASH_COLOUR: &str = "#2563eb";
const TORRENT_COLOUR: &str = "#d9480f";
/// Points drawn as dots too while a series has at most this many.
const DOTS_UP_TO: usize = 40;
/// The shortest time axis (two sample intervals).
const MIN_SPAN: u64 = 2 * SAMPLE_EVERY.as_secs();

/// The last hour's growth: new infohashes (top) and new torrents (bottom)
/// per minute between consecutive samples, on a time axis as long as the
/// samples reach (an hour at most).
pub fn chart(samples: &[Sample], l: Layout) -> String {
    let mut s = String::with_capacity(16 * 1024);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" \
         font-family=\"{FONT}\" font-size=\"12\" role=\"img\">\n\
         <title>New infohashes and new torrents per minute</title>\n",
        l.w, l.h, l.w, l.h
    );
    let intervals: Vec<(u64, f64, f64)> = samples
        .windows(2)
        .filter(|w| w[1].at > w[0].at)
        .map(|w| {
            let per_min = |a: u64, b: u64| b.saturating_sub(a) as f64 * 60.0 / (w[1].at - w[0].at) as f64;
            (
                w[1].at,
                per_min(w[0].infohashes, w[1].infohashes),
                per_min(w[0].torrents, w[1].torrents),
            )
        })
        .collect();
    let end = samples.last().map_or(0, |l| l.at);
    // The axis starts where the first value is: the end of the first interval.
    let start = intervals.first().map_or(end, |i| i.0);
    let span = end.saturating_sub(start).clamp(MIN_SPAN, 3600);
    let x_of = |t: u64| l.left + (l.w - l.left - l.right) * (1.0 - end.saturating_sub(t) as f64 / span as f64);

    // Time axis: vertical grid lines through both panels, labels below.
    let step = [10u64, 15, 30, 60, 120, 300, 600, 900, 1200]
        .into_iter()
        .find(|st| span / st <= l.max_ticks)
        .unwrap_or(1200);
    let mut back = 0;
    while back <= span {
        let x = x_of(end.saturating_sub(back));
        for top in l.panels {
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"{GRID}\"/>",
                top + l.panel_h
            );
        }
        let label = match back {
            0 => "now".to_owned(),
            b if step < 60 => format!("−{b} s"),
            b => format!("−{} min", b / 60),
        };
        let anchor = if back == 0 {
            "end"
        } else if back + step > span && x_of(end.saturating_sub(back)) < l.left + 20.0 {
            "start"
        } else {
            "middle"
        };
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" fill=\"{INK}\" text-anchor=\"{anchor}\">{label}</text>",
            l.axis_y
        );
        back += step;
    }

    let series = [
        ("New infohashes per minute", INFOHASH_COLOUR, l.panels[0], 1usize),
        ("New torrents per minute", TORRENT_COLOUR, l.panels[1], 2usize),
    ];
    for (title, colour, top, which) in series {
        let values: Vec<(u64, f64)> = intervals
            .iter()
            .map(|i| (i.0, if which == 1 { i.1 } else { i.2 }))
            .collect();
        panel(&mut s, &l, title, colour, top, &values, &x_of);
    }
    if intervals.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" text-anchor=\"middle\" font-size=\"13\">\
             Collecting samples: the chart starts {} s after the server.</text>",
            (l.left + l.w - l.right) / 2.0,
            l.panels[0] + l.panel_h / 2.0,
            MIN_SPAN
        );
    }
    s.push_str("</svg>\n");
    s
}

fn panel(
    s: &mut String,
    l: &Layout,
    title: &str,
    colour: &str,
    top: f64,
    values: &[(u64, f64)],
    x_of: &impl Fn(u64) -> f64,
) {
    let bottom = top + l.panel_h;
    let latest = values.last().map(|v| {
        let n = if v.1 < 10.0 {
            format!("{:.1}", v.1)
        } else {
            count(v.1.round() as u64)
        };
        format!(" · latest {n}")
    });
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#1c2430\" font-size=\"13\" font-weight=\"600\">{title}\
         <tspan fill=\"{INK}\" font-weight=\"400\">{}</tspan></text>",
        l.left,
        top - 12.0,
        latest.unwrap_or_default()
    );
    let max = values.iter().map(|v| v.1).fold(0.0, f64::max);
    let step = nice_step(max / 4.0);
    let y_of = |v: f64| bottom - l.panel_h * (v / (4.0 * step)).min(1.0);
    for i in 0..=4 {
        let v = step * f64::from(i);
        let y = y_of(v);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"{}\"/>\
             <text x=\"{}\" y=\"{:.1}\" fill=\"{INK}\" text-anchor=\"end\">{}</text>",
            l.left,
            l.w - l.right,
            if i == 0 { "#c3cad4" } else { GRID },
            l.left - 8.0,
            y + 4.0,
            compact(v, step, 4.0 * step)
        );
    }
    if values.is_empty() {
        return;
    }
    let points: Vec<String> = values
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x_of(*t), y_of(*v)))
        .collect();
    let first_x = x_of(values[0].0);
    let last_x = x_of(values[values.len() - 1].0);
    let _ = writeln!(
        s,
        "<polygon points=\"{first_x:.1},{bottom:.1} {} {last_x:.1},{bottom:.1}\" fill=\"{colour}\" fill-opacity=\"0.12\"/>",
        points.join(" ")
    );
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-linejoin=\"round\" \
         stroke-linecap=\"round\"/>",
        points.join(" ")
    );
    if values.len() <= DOTS_UP_TO {
        for p in &points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>");
        }
    }
}

/// The smallest of 1, 2 and 5 times a power of ten that is at least `v`.
fn nice_step(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * base)
}

/// An axis label: `0`, `0.5`, `25`, `15k`, `2.5M`; in the unit `top` (the
/// axis's largest label) needs, as precise as `step` needs.
fn compact(v: f64, step: f64, top: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let (div, suffix) = if top >= 1e6 {
        (1e6, "M")
    } else if top >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let unit = step / div;
    let decimals = if unit >= 1.0 {
        0
    } else {
        (-unit.log10().floor()).clamp(0.0, 6.0) as usize
    };
    format!("{:.decimals$}{suffix}", v / div)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64, infohashes: u64, torrents: u64) -> Sample {
        Sample {
            at,
            infohashes,
            torrents,
            fetch_queue: 0,
        }
    }

    #[test]
    fn the_chart_draws_growth_per_minute_and_nothing_active() {
        let samples: Vec<_> = (0..30).map(|i| sample(1000 + i * 10, i * i * 100, i * 5)).collect();
        let svg = chart(&samples, WIDE);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("−4 min") && svg.contains(">now<"));
        // Torrents grew by 5 per 10 s: 30 a minute, a flat line.
        assert!(svg.contains("latest 30"));
        assert!(!svg.contains("<script") && !svg.contains("style") && !svg.contains("href"));
        let attributes = svg
            .split('<')
            .filter_map(|tag| tag.split('>').next())
            .flat_map(|tag| tag.split_whitespace().skip(1));
        assert!(attributes.clone().all(|a| !a.starts_with("on")), "an event attribute");
        assert!(attributes.count() > 100);
    }

    #[test]
    fn a_chart_without_samples_says_so() {
        for samples in [vec![], vec![sample(5, 1, 1)]] {
            let svg = chart(&samples, NARROW);
            assert!(svg.contains("Collecting samples"));
            assert!(!svg.contains("<polyline"));
        }
        // A shrinking estimate (after a compaction) is no negative growth.
        let svg = chart(&[sample(0, 100, 10), sample(10, 50, 5)], WIDE);
        assert!(svg.contains("latest 0"), "{svg}");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(3.2), 5.0);
        assert_eq!(nice_step(20.0), 20.0);
        assert_eq!(nice_step(0.07), 0.1);
        assert_eq!(nice_step(1234.0), 2000.0);
        assert_eq!(compact(0.5, 0.5, 2.0), "0.5");
        assert_eq!(compact(0.15, 0.05, 0.2), "0.15");
        assert_eq!(compact(30.0, 10.0, 40.0), "30");
        assert_eq!(compact(2000.0, 500.0, 2000.0), "2000");
        assert_eq!(compact(5000.0, 5000.0, 20_000.0), "5k");
        assert_eq!(compact(15_000.0, 5000.0, 20_000.0), "15k");
        assert_eq!(compact(2_500_000.0, 500_000.0, 2e6), "2.5M");
    }

    #[test]
    fn the_page_shows_estimates_rates_and_exact_counts() {
        let mut stats = StoreStats {
            infohashes: 1_234_567,
            torrents: 1000,
            ..StoreStats::default()
        };
        stats.by_class[0] = 750;
        let v = CrawlView {
            latest: Some(Sample {
                at: 100,
                infohashes: 1_234_567,
                torrents: 1000,
                fetch_queue: 42,
            }),
            minute: Rates {
                infohashes_per_s: 12.34,
                torrents_per_s: 0.5,
                over_s: 60,
            },
            hour: Rates {
                infohashes_per_s: 10.0,
                torrents_per_s: 0.25,
                over_s: 600,
            },
            exact: Some((90, stats)),
            documents: 999,
            serving_since: 0,
        };
        let html = render(&v, 100);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(html.contains("≈ 1,234,567") && html.contains("≈ 42"));
        assert!(html.contains("+12.3/s over the last minute"));
        assert!(html.contains("0.25/s<span class=\"muted note\">over 10 min</span>"));
        assert!(html.contains("<img src=\"/crawl/chart.svg\""));
        assert!(html.contains("0.1 % of infohashes"));
        assert!(html.contains("<meter min=\"0\" max=\"1\" value=\"0.7500\">"));
        let empty = render(
            &CrawlView {
                latest: None,
                minute: Rates::default(),
                hour: Rates::default(),
                exact: None,
                documents: 0,
                serving_since: 0,
            },
            0,
        );
        assert!(empty.contains("collecting samples") && empty.contains("Not counted yet"));
    }
}
