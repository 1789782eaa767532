//! `trawl serve` beside a running writer (the crawl's side): the index is
//! built from the store, follows new torrents and scrapes, and the JSON API
//! searches, filters, sorts, pages and refuses bad requests with stable errors.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use trawl_storage::*;

const FOLLOW: Duration = Duration::from_secs(10);

fn names(r: &Reply) -> Vec<String> {
    r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_owned())
        .collect()
}

fn catalogue() -> Vec<Spec<'static>> {
    let mut v = vec![
        Spec {
            files: &[
                ("The.Movie.2019.1080p.BluRay.x264-GROUP.mkv", 4 << 30),
                ("Extras/Behind_the_Scenes.mkv", 1 << 30),
            ],
            content_type: Some(BitmagnetType::Movie),
            ..Spec::new(1, "The.Movie.2019.1080p.BluRay.x264-GROUP")
        },
        Spec {
            class: ContentClass::Audio,
            content_type: Some(BitmagnetType::Music),
            ..Spec::new(2, "Amélie [Soundtrack] (FLAC)")
        },
        Spec {
            class: ContentClass::Software,
            version: TorrentVersion::Hybrid,
            ..Spec::new(3, "ubuntu-24.04-desktop-amd64.iso")
        },
        Spec {
            content_type: Some(BitmagnetType::TvShow),
            ..Spec::new(4, "Show.Name.S01E02.720p.WEB")
        },
        Spec {
            class: ContentClass::Ebook,
            version: TorrentVersion::V2,
            ..Spec::new(5, "Some_Book_(2020)_epub")
        },
    ];
    for n in 10..70 {
        v.push(Spec::new(n, "filler video release"));
    }
    v
}

#[test]
fn the_index_follows_the_crawl_and_the_api_searches_it() {
    let crawl = Crawl::new();
    crawl.store(&catalogue());
    let index_dir = crawl.dir.path().join("db.search");
    let server = Server::start(crawl.db(), index_dir.clone(), None);

    // The first start builds the index from the store.
    let r = server.wait_for("/api/search?q=movie", FOLLOW, |r| {
        r.status == 200 && r.json()["total"] == 1
    });
    assert_eq!(names(&r), ["The.Movie.2019.1080p.BluRay.x264-GROUP"], "{}", r.body);
    let hit = &r.json()["hits"][0];
    assert_eq!(hit["info_hash"], hex(&h(1)));
    assert_eq!(hit["class"], "video");
    assert_eq!(hit["content_type"], "movie");
    assert_eq!(hit["files"], 2);
    assert_eq!(hit["size"], (5u64 << 30));
    assert!(hit["magnet"]
        .as_str()
        .unwrap()
        .starts_with(&format!("magnet:?xt=urn:btih:{}&dn=", hex(&h(1)))));

    // Release-name tokens: dots, dashes, brackets, underscores, accents; file paths.
    for (q, want) in [
        ("1080p bluray", 1),
        ("x264-group", 1),
        ("\"movie 2019\"", 1),
        ("behind scenes", 1),
        ("amelie", 2),
        ("soundtrack flac", 2),
        ("ubuntu 24.04", 3),
        ("s01e02", 4),
        ("book epub", 5),
    ] {
        let r = server.get(&format!("/api/search?q={}", enc(q)));
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let hits = r.json()["hits"].as_array().unwrap().clone();
        assert_eq!(hits.len(), 1, "{q}: {}", r.body);
        assert_eq!(hits[0]["info_hash"], hex(&h(want)), "{q}");
    }
    assert_eq!(
        server.get("/api/search?q=%22scenes+behind%22").json()["total"],
        0,
        "phrases keep order"
    );
    assert_eq!(
        server.get("/api/search?q=movie+-bluray").json()["total"],
        0,
        "exclusion"
    );
    assert_eq!(server.get("/api/search?q=nothing+here").json()["total"], 0);

    // Filters.
    let total = |q: &str| {
        server.get(&format!("/api/search?{q}")).json()["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(total(""), 65);
    assert_eq!(total("class=audio,software"), 2);
    assert_eq!(total("type=tv_show"), 1);
    assert_eq!(total("version=v2,hybrid"), 2);
    assert_eq!(total("min_size=4G"), 1, "the fillers are n MB");
    assert_eq!(total("max_size=5000000"), 4, "hashes 2..=5 are n MB");
    assert_eq!(total("since=1700000060"), 10);
    assert_eq!(
        total("q=filler&class=video&min_size=30M&max_size=40M"),
        10,
        "n = 32..=41 (M is 2^20)"
    );

    // Sorting by size both ways, and cursor pages that cover everything once.
    let sizes = |q: &str| -> Vec<u64> {
        server.get(&format!("/api/search?{q}")).json()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["size"].as_u64().unwrap())
            .collect()
    };
    let desc = sizes("sort=size&limit=5");
    assert!(desc.windows(2).all(|w| w[0] >= w[1]) && desc[0] == 5 << 30, "{desc:?}");
    let asc = sizes("sort=size&order=asc&limit=5");
    assert_eq!(asc, [2_000_000, 3_000_000, 4_000_000, 5_000_000, 10_000_000]);
    for sort in ["first_seen", "size", "relevance"] {
        let mut seen = HashSet::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let r = server.get(&format!("/api/search?sort={sort}&limit=7&cursor={cursor}"));
            assert_eq!(r.status, 200, "{}", r.body);
            let j = r.json();
            for hit in j["hits"].as_array().unwrap() {
                assert!(
                    seen.insert(hit["info_hash"].as_str().unwrap().to_owned()),
                    "{sort}: a hit twice"
                );
            }
            pages += 1;
            match j["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert_eq!((seen.len(), pages), (65, 10), "{sort}");
    }

    // New torrents and a new scrape reach the index while the crawl runs.
    crawl.store(&[Spec::new(100, "Fresh.Arrival.2026")]);
    crawl.write(Batch {
        scrapes: vec![scrape(3, 900), scrape(100, 40), scrape(4242, 7)],
        ..Batch::default()
    });
    let r = server.wait_for("/api/search?sort=seeders&limit=2", FOLLOW, |r| {
        names(r) == ["ubuntu-24.04-desktop-amd64.iso", "Fresh.Arrival.2026"]
    });
    assert_eq!(
        names(&r),
        ["ubuntu-24.04-desktop-amd64.iso", "Fresh.Arrival.2026"],
        "{}",
        r.body
    );
    assert_eq!(r.json()["hits"][0]["seeders"], 900);
    assert_eq!(total("min_seeders=40"), 2);
    assert_eq!(
        total(""),
        66,
        "a scrape of an unknown hash adds no document, a rescrape no second one"
    );

    // One torrent, everything the store knows.
    let r = server.get(&format!("/api/torrent/{}", hex(&h(3))));
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert_eq!(t["version"], "hybrid");
    assert_eq!(t["info_hash_v2"], hex(&[3u8; 32]));
    assert_eq!(t["scrape"]["seeders"], 900);
    assert_eq!(t["sources"], serde_json::json!(["sample"]));
    assert_eq!(t["first_seen"], 1_700_000_003);
    assert!(t["magnet"]
        .as_str()
        .unwrap()
        .contains(&format!("xt=urn:btmh:1220{}", hex(&[3u8; 32]))));
    assert_eq!(t["files"][0]["path"], "ubuntu-24.04-desktop-amd64.iso");

    // Stable errors.
    let err = |path: &str, status: u16, code: &str| {
        let r = server.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], code, "{path}");
        assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
        assert_eq!(r.header("content-type"), Some("application/json"));
    };
    err(
        "/api/torrent/00112233445566778899aabbccddeeff00112233",
        404,
        "not_found",
    );
    err("/api/torrent/xyz", 400, "bad_request");
    err("/api/search?q=%22open", 400, "bad_request");
    err("/api/search?limit=1000", 400, "bad_request");
    err("/api/search?colour=red", 400, "bad_request");
    err("/api/search?cursor=nonsense", 400, "bad_request");
    err("/api/no/such/route", 404, "not_found");
    err("/torznab/nothing", 404, "not_found");
    // A browser that mistypes an address gets a page, not JSON.
    let r = server.get("/no/such/page");
    assert_eq!(r.status, 404);
    assert!(
        r.header("content-type").unwrap().starts_with("text/html"),
        "{:?}",
        r.headers
    );
    assert!(r.body.contains("Not found"), "{}", r.body);
    err(&format!("/api/search?q={}", "a".repeat(5000)), 414, "uri_too_long");
    let r = request(server.addr, "POST", "/api/search", &[("Content-Length", "0")]);
    assert_eq!(r.status, 405);
    // Every answer carries the security headers.
    let r = server.get("/api/search");
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // Stats: the same object as `trawl stats --json`, once counted.
    let r = server.wait_for("/api/stats", FOLLOW, |r| {
        r.json()["exact"]["torrents"].as_u64().is_some()
    });
    let s = r.json();
    // Counted once at start (before the fresh arrival), then every 10 minutes.
    assert_eq!(s["exact"]["torrents"], 65, "{}", r.body);
    assert!(s["exact"]["classes"]["video"].as_u64().unwrap() >= 60);
    assert!(s["estimate"]["torrents"].as_u64().is_some());
    assert_eq!(s["index"]["documents"], 66);

    // A restart resumes from the committed cursor: nothing is indexed twice.
    server.stop().unwrap();
    let server = Server::start(crawl.db(), index_dir, None);
    assert_eq!(server.get("/api/search").json()["total"], 66);
    crawl.store(&[Spec::new(101, "After.Restart")]);
    let r = server.wait_for("/api/search?q=restart", FOLLOW, |r| r.json()["total"] == 1);
    assert_eq!(r.json()["total"], 1);
    assert_eq!(server.get("/api/search").json()["total"], 67);
}

#[test]
fn a_token_guards_every_route() {
    let crawl = Crawl::new();
    crawl.store(&[Spec::new(1, "guarded")]);
    let token = "0123456789abcdef0123";
    let server = Server::start(crawl.db(), crawl.dir.path().join("idx"), Some(token));
    for path in ["/api/search", "/torznab/api?t=caps", "/"] {
        let r = server.get(path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.header("www-authenticate").is_some());
    }
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(server.addr, "/api/search", &[("Authorization", &bearer)]).status,
        200
    );
    assert_eq!(
        get(
            server.addr,
            "/api/search",
            &[("Authorization", "Bearer wrong-token-wrong-token")]
        )
        .status,
        401
    );
    // Basic: any user, the token as password ("u:" + token, base64).
    let basic = format!("Basic {}", b64(format!("u:{token}").as_bytes()));
    assert_eq!(
        get(server.addr, "/api/search", &[("Authorization", &basic)]).status,
        200
    );
    assert_eq!(server.get(&format!("/torznab/api?t=caps&apikey={token}")).status, 200);
    assert_eq!(server.get("/torznab/api?t=caps&apikey=nope").status, 401);
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn serve_refuses_what_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |db: std::path::PathBuf, listen: &str, token: Option<&str>| trawl_serve::ServeOptions {
        db,
        index_dir: dir.path().join("idx"),
        listen: listen.parse().unwrap(),
        token: token.map(str::to_owned),
        threads: 1,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let e = trawl_serve::serve(
        opts(dir.path().join("missing"), "127.0.0.1:0", None),
        stop.clone(),
        |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let e = trawl_serve::serve(opts(dir.path().into(), "0.0.0.0:0", None), stop, |_| {}).unwrap_err();
    assert!(e.to_string().contains("--token"), "{e}");
}
