//! The documentation stays navigable as the code grows: every provider in
//! `providers::ALL` has its page, the README links every page, and every relative
//! Markdown link in the README and `docs/` resolves to a file (and, for
//! `#anchor` links into Markdown, to a heading of that file).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use mailhooks::providers::ALL;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.md` file under `dir`, recursively, sorted.
fn markdown_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The files whose links are checked: the README and every page under `docs/`.
fn checked_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    files.extend(markdown_under(&root().join("docs")));
    files
}

/// Lines outside fenced code blocks: text in a fence is code, not Markdown.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push(line);
        }
    }
    lines
}

/// The line with inline code spans removed (a run of N backticks up to the next
/// run of exactly N), so that `[x](y)` written as code is not taken for a link.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j + m);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + n]);
                i += n;
            }
        }
    }
    out
}

/// The targets of inline links `[text](target)` in Markdown prose; a `](` with no
/// closing parenthesis on its line is returned as `Err` so it cannot hide a link.
fn link_targets(text: &str) -> Vec<Result<String, String>> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            match after.find(')') {
                Some(end) => {
                    targets.push(Ok(after[..end].trim().to_owned()));
                    rest = &after[end + 1..];
                }
                None => {
                    targets.push(Err(line.clone()));
                    break;
                }
            }
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower-case, punctuation dropped (letters,
/// digits, spaces, `-` and `_` kept), each space turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every ATX heading (`#` to `######`) outside code fences; a
/// repeated slug gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let Some(title) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        if hashes == 0 || hashes > 6 {
            continue;
        }
        let base = slug(title.trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
}

/// What is wrong with one link target written in `file`, if anything.
fn check_target(file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("empty link target".to_owned());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent().unwrap().join(path)
    };
    if !resolved.exists() {
        return Some(format!("{target}: {} does not exist", resolved.display()));
    }
    let anchor = anchor?;
    if resolved.extension().is_none_or(|e| e != "md") {
        return Some(format!(
            "{target}: anchors are only checked in Markdown files"
        ));
    }
    let text = fs::read_to_string(&resolved).unwrap();
    (!anchors(&text).contains(anchor)).then(|| {
        format!(
            "{target}: no heading with anchor #{anchor} in {}",
            resolved.display()
        )
    })
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_provider_has_its_page_and_every_page_a_provider() {
    let dir = root().join("docs/providers");
    for provider in ALL {
        let page = dir.join(format!("{}.md", provider.name()));
        assert!(
            page.is_file(),
            "provider {} has no page: write {} (see docs/providers/tencent.md for the sections)",
            provider.name(),
            relative(&page)
        );
    }
    let names: BTreeSet<&str> = ALL.iter().map(|p| p.name()).collect();
    for page in markdown_under(&dir) {
        let stem = page.file_stem().unwrap().to_str().unwrap();
        assert!(
            names.contains(stem),
            "{} documents no provider in providers::ALL",
            relative(&page)
        );
    }
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in checked_files() {
        let text = fs::read_to_string(&file).unwrap();
        for target in link_targets(&text) {
            match target {
                Ok(target) if is_external(&target) => {}
                Ok(target) => {
                    checked += 1;
                    if let Some(problem) = check_target(&file, &target) {
                        broken.push(format!("{}: {problem}", relative(&file)));
                    }
                }
                Err(line) => broken.push(format!(
                    "{}: unclosed link target in: {line}",
                    relative(&file)
                )),
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The pages link each other heavily; finding almost none means the extractor broke.
    assert!(checked > 50, "only {checked} relative links found");
}

#[test]
fn the_readme_links_every_docs_page() {
    let readme = root().join("README.md");
    let linked: BTreeSet<PathBuf> = link_targets(&fs::read_to_string(&readme).unwrap())
        .into_iter()
        .flatten()
        .filter(|t| !is_external(t))
        .map(|t| root().join(t.split('#').next().unwrap_or_default()))
        .collect();
    for page in markdown_under(&root().join("docs")) {
        // A link to the folder (docs/providers/) covers the pages in it, so that
        // adding an ESP does not mean editing the README.
        let folder = page.parent().map(Path::to_path_buf).unwrap_or_default();
        assert!(
            linked.contains(&page) || linked.contains(&folder),
            "README.md does not link {} or its folder",
            relative(&page)
        );
    }
}

#[test]
fn every_page_opens_with_a_title_and_a_one_line_summary() {
    for page in markdown_under(&root().join("docs")) {
        let text = fs::read_to_string(&page).unwrap();
        let lines: Vec<&str> = text.lines().take(3).collect();
        assert!(
            matches!(lines.as_slice(), [title, "", summary]
                if title.starts_with("# ") && !summary.is_empty() && !summary.starts_with('#')),
            "{} must open with `# Title`, a blank line and a one-line summary",
            relative(&page)
        );
    }
}

#[test]
fn the_readme_starts_with_the_run_and_test_commands() {
    // CI and users copy these two lines from the top of the README.
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let first_block: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        first_block,
        [
            "cargo run --features local --bin local -- --demo",
            "cargo test"
        ]
    );
}

#[test]
fn the_extractor_reads_links_and_skips_code() {
    let text = "see [a](a.md), [b `c`](b.md#x) and `[not](code.md)`\n\
                ```\n[fenced](fenced.md)\n```\n\
                [web](https://example.com) [broken](open.md\n";
    let found = link_targets(text);
    assert_eq!(
        found[..3],
        [
            Ok("a.md".to_owned()),
            Ok("b.md#x".to_owned()),
            Ok("https://example.com".to_owned())
        ]
    );
    assert!(found[3].is_err(), "an unclosed target is reported");
    assert_eq!(found.len(), 4);
}

#[test]
fn anchors_follow_github() {
    let text = "# Deploy\n## With AWS SAM (recommended: table, API)\n\
                ## `recipient <address> [--since TIME]`\n## Check it\n## Check it\n\
                ```\n## not a heading\n```\n";
    let expected: BTreeSet<String> = [
        "deploy",
        "with-aws-sam-recommended-table-api",
        "recipient-address---since-time",
        "check-it",
        "check-it-1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(anchors(text), expected);
}
