//! `/torznab/api` against the spec's required elements: the caps document,
//! RSS items with title, guid, link, size, pubDate, category and the torznab
//! attributes Prowlarr reads (seeders, peers, infohash, magneturl), paging by
//! limit and offset, category filters, and error objects. Every document is
//! parsed by a real XML parser, so an unescaped name would fail the test.

mod common;

use common::*;
use trawl_storage::*;

fn xml(r: &Reply) -> roxmltree::Document<'_> {
    assert_eq!(r.header("content-type"), Some("application/xml; charset=utf-8"));
    roxmltree::Document::parse(&r.body).unwrap_or_else(|e| panic!("not XML ({e}): {}", r.body))
}

const TORZNAB_NS: &str = "http://torznab.com/schemas/2015/feed";

fn attr<'a>(item: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    item.children()
        .find(|c| {
            c.tag_name().name() == "attr"
                && c.tag_name().namespace() == Some(TORZNAB_NS)
                && c.attribute("name") == Some(name)
        })
        .and_then(|c| c.attribute("value"))
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children().find(|c| c.tag_name().name() == name)
}

fn items<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    let channel = child(doc.root_element(), "channel").expect("channel");
    channel.children().filter(|c| c.tag_name().name() == "item").collect()
}

#[test]
fn torznab_answers_what_prowlarr_asks() {
    let crawl = Crawl::new();
    let mut specs = vec![
        Spec {
            content_type: Some(BitmagnetType::TvShow),
            ..Spec::new(1, "Show.Name.S01E02.720p.WEB-GRP")
        },
        Spec {
            content_type: Some(BitmagnetType::TvShow),
            ..Spec::new(2, "Show.Name.S01.COMPLETE.1080p")
        },
        Spec {
            content_type: Some(BitmagnetType::Movie),
            ..Spec::new(3, "A <Movie> & \"Friends\" 2024 1080p")
        },
        Spec {
            class: ContentClass::Ebook,
            content_type: Some(BitmagnetType::Ebook),
            ..Spec::new(4, "Some.Book.epub")
        },
        Spec {
            class: ContentClass::Archive,
            ..Spec::new(5, "backup\u{1}archive.zip")
        },
    ];
    for n in 10..40 {
        specs.push(Spec::new(n, "plain video file"));
    }
    crawl.store(&specs);
    crawl.write(Batch {
        scrapes: vec![scrape(1, 12), scrape(3, 30)],
        ..Batch::default()
    });
    let server = Server::start(crawl.db(), crawl.dir.path().join("idx"), None);
    server.wait_for("/api/search", std::time::Duration::from_secs(10), |r| {
        r.json()["total"] == 35
    });

    // caps: server, limits, searching modes, categories with subcats.
    let r = server.get("/torznab/api?t=caps");
    assert_eq!(r.status, 200);
    let doc = xml(&r);
    let caps = doc.root_element();
    assert_eq!(caps.tag_name().name(), "caps");
    assert!(child(caps, "server").is_some());
    let limits = child(caps, "limits").unwrap();
    assert_eq!(
        (limits.attribute("default"), limits.attribute("max")),
        (Some("25"), Some("100"))
    );
    let searching = child(caps, "searching").unwrap();
    for mode in ["search", "tv-search", "movie-search"] {
        assert_eq!(
            child(searching, mode).and_then(|m| m.attribute("available")),
            Some("yes"),
            "{mode}"
        );
    }
    assert!(child(searching, "tv-search")
        .unwrap()
        .attribute("supportedParams")
        .unwrap()
        .contains("season"));
    let cats: Vec<_> = child(caps, "categories")
        .unwrap()
        .children()
        .filter(|c| c.is_element())
        .collect();
    let ids: Vec<_> = cats.iter().filter_map(|c| c.attribute("id")).collect();
    for id in ["2000", "5000", "3000", "7000", "8000"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let books = cats.iter().find(|c| c.attribute("id") == Some("7000")).unwrap();
    assert!(books.children().any(|s| s.attribute("id") == Some("7020")));

    // tvsearch with season and episode: the episode only, with every required element.
    let r = server.get("/torznab/api?t=tvsearch&q=show+name&season=1&ep=2&cat=5000");
    let doc = xml(&r);
    assert_eq!(doc.root_element().tag_name().name(), "rss");
    assert_eq!(doc.root_element().attribute("version"), Some("2.0"));
    let found = items(&doc);
    assert_eq!(found.len(), 1, "{}", r.body);
    let it = found[0];
    assert_eq!(
        child(it, "title").unwrap().text(),
        Some("Show.Name.S01E02.720p.WEB-GRP")
    );
    assert_eq!(child(it, "guid").unwrap().text(), Some(hex(&h(1)).as_str()));
    assert_eq!(child(it, "size").unwrap().text(), Some("1000000"));
    assert_eq!(child(it, "category").unwrap().text(), Some("5000"));
    assert!(child(it, "pubDate").unwrap().text().unwrap().ends_with("+0000"));
    let link = child(it, "link").unwrap().text().unwrap();
    assert!(
        link.starts_with(&format!("magnet:?xt=urn:btih:{}", hex(&h(1)))),
        "{link}"
    );
    let enclosure = child(it, "enclosure").unwrap();
    assert_eq!(enclosure.attribute("url"), Some(link));
    assert_eq!(attr(it, "seeders"), Some("12"));
    assert_eq!(attr(it, "peers"), Some("18"));
    assert_eq!(attr(it, "infohash"), Some(hex(&h(1)).as_str()));
    assert_eq!(attr(it, "magneturl"), Some(link));
    // Season only: the season pack.
    let doc_s = server.get("/torznab/api?t=tvsearch&q=show+name&season=1");
    assert_eq!(items(&xml(&doc_s)).len(), 1);

    // Names that are markup stay text; a control character XML cannot hold is replaced.
    let r = server.get("/torznab/api?t=movie&q=friends");
    let doc = xml(&r);
    let t = child(items(&doc)[0], "title").unwrap().text().unwrap().to_owned();
    assert_eq!(t, "A <Movie> & \"Friends\" 2024 1080p");
    assert_eq!(attr(items(&doc)[0], "category"), Some("2000"));
    let r = server.get("/torznab/api?t=search&q=backup");
    assert_eq!(
        child(items(&xml(&r))[0], "title").unwrap().text(),
        Some("backup\u{FFFD}archive.zip")
    );

    // Categories: a parent matches its subcategory; paging by limit and offset.
    let r = server.get("/torznab/api?t=search&cat=7000");
    assert_eq!(attr(items(&xml(&r))[0], "category"), Some("7020"));
    let page = |q: &str| -> (Vec<String>, String) {
        let r = server.get(&format!("/torznab/api?t=search&{q}"));
        let doc = xml(&r);
        let resp = child(doc.root_element(), "channel")
            .unwrap()
            .children()
            .find(|c| c.tag_name().name() == "response")
            .unwrap();
        let total = resp.attribute("total").unwrap().to_owned();
        (
            items(&doc)
                .iter()
                .map(|i| child(*i, "guid").unwrap().text().unwrap().to_owned())
                .collect(),
            total,
        )
    };
    let (all, total) = page("limit=100");
    assert_eq!((all.len(), total.as_str()), (35, "35"));
    let (first, _) = page("limit=10");
    let (second, _) = page("limit=10&offset=10");
    assert_eq!(first, all[..10]);
    assert_eq!(second, all[10..20]);

    // Errors are Torznab error objects.
    for (q, code) in [
        ("", "200"),
        ("t=music", "202"),
        ("t=search&cat=films", "201"),
        ("t=search&offset=99999", "201"),
    ] {
        let r = server.get(&format!("/torznab/api?{q}"));
        let doc = xml(&r);
        assert_eq!(doc.root_element().tag_name().name(), "error", "{q}");
        assert_eq!(doc.root_element().attribute("code"), Some(code), "{q}");
        assert!(!doc.root_element().attribute("description").unwrap().is_empty());
    }
}
