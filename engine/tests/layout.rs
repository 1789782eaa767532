//! The rules of the house that the compiler does not check (docs/ARCHITECTURE.md):
//! the protocol rooms do no I/O and never name glommio, and the library takes
//! none of the binary's dependencies.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of non-test code, without comments (a doc comment may say what a room
/// must not use; tests beside the code may read the clock to build a `now`).
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The inline test module, if any, runs to the end of the file.
    let end = (0..lines.len())
        .find(|&i| lines[i].trim() == "#[cfg(test)]" && lines.get(i + 1).is_some_and(|l| l.trim() == "mod tests {"))
        .unwrap_or(lines.len());
    (0..end)
        .filter(|&i| !lines[i].trim_start().starts_with("//"))
        .map(|i| (i + 1, lines[i].to_owned()))
        .collect()
}

#[test]
fn protocol_rooms_do_no_io_and_never_name_glommio() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "glommio",
        "UdpSocket",
        "TcpStream",
        "TcpListener",
        "std::fs",
        "std::thread",
        "Instant::now",
        "SystemTime::now",
    ];
    let mut offences = Vec::new();
    for room in ["codec", "dht", "crawl", "metadata"] {
        let mut files = Vec::new();
        rust_files(&src.join(room), &mut files);
        assert!(!files.is_empty(), "{room} has sources");
        for file in files {
            for (n, line) in code_lines(&file) {
                if let Some(word) = forbidden.iter().find(|w| line.contains(*w)) {
                    offences.push(format!("{}:{n}: {word}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "I/O or runtime in a protocol room:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_library_takes_none_of_the_binarys_dependencies() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    for cli_only in [
        "clap",
        "indicatif",
        "toml",
        "prometheus-client",
        "tracing-subscriber",
        "signal-hook",
        "anyhow",
    ] {
        assert!(
            !deps.lines().any(|l| l.split(['.', ' ', '=']).next() == Some(cli_only)),
            "{cli_only} is the binary's, not the library's"
        );
    }
    let mimalloc = deps.lines().find(|l| l.starts_with("mimalloc")).unwrap_or("");
    assert!(
        mimalloc.is_empty() || mimalloc.contains("optional = true"),
        "{mimalloc}"
    );
}
