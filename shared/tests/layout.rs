//! The codebase's shape, checked: what a newcomer relies on to find each idea in one place.
//!
//! - the flow speaks in domain results: `flow.rs` never names the HTTP error type;
//! - no product file is over 700 lines;
//! - the top-level modules of `shared/src` import each other without circles;
//! - no comment holds an absolute path of a machine;
//! - `openapi.yaml` documents exactly the error codes of [`ErrorCode::ALL`] (plus the auth
//!   server's own OAuth codes it passes on).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use shared::{ciba::OAuthError, error::ErrorCode};

const MAX_LINES: usize = 700;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn product_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&repo().join("shared/src"), &mut files);
    for function in fs::read_dir(repo().join("functions")).unwrap() {
        let src = function.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    files
}

/// The code lines of a file, without comments (doc links are not imports).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|line| !line.trim_start().starts_with("//"))
}

#[test]
fn the_flow_does_not_speak_http() {
    let flow = fs::read_to_string(repo().join("shared/src/flow.rs")).unwrap();
    for forbidden in ["ApiError", "crate::error", "StatusCode", "lambda_http", "telemetry", "Summary"] {
        assert!(
            !code_lines(&flow).any(|line| line.contains(forbidden)),
            "flow.rs mentions {forbidden}: it returns FlowError and Facts, the edge maps them"
        );
    }
}

#[test]
fn no_product_file_is_over_700_lines() {
    for file in product_files() {
        let lines = fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines <= MAX_LINES, "{} has {lines} lines (at most {MAX_LINES})", file.display());
    }
}

/// The top-level module a `crate::…` path names (`crate::App` is `app`'s re-export).
fn module_of(name: &str) -> String {
    match name {
        "App" => "app".to_owned(),
        "StartupError" => "startup".to_owned(),
        other => other.to_owned(),
    }
}

/// The top-level modules a file imports, from `use crate::{a, b::c}` groups and inline
/// `crate::x::` paths.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = code_lines(text).collect::<Vec<_>>().join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at depth 0 of the braced group.
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(module_of(head(&group[start..i])));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(module_of(head(&group[start..i])));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(module_of(head(rest)));
        }
    }
    found.remove("");
    found
}

fn head(path: &str) -> &str {
    let path = path.trim_start();
    let end = path.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(path.len());
    &path[..end]
}

#[test]
fn shared_has_no_import_circles() {
    let src = repo().join("shared/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let mut uses = imports(&fs::read_to_string(&file).unwrap());
        uses.remove(&module);
        graph.entry(module).or_default().extend(uses);
    }
    assert!(graph.len() > 10, "read the modules: {graph:?}");
    // Depth-first search for a back edge; the path shows the circle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| n == node) {
            panic!("import circle: {} -> {node}", path[at..].join(" -> "));
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_circle_check_finds_circles() {
    assert_eq!(
        imports("use crate::{\n    a::{B, c::D},\n    e,\n};\nfn f() { crate::g::h(); }\n// crate::doc"),
        ["a", "e", "g"].into_iter().map(str::to_owned).collect()
    );
}

#[test]
fn no_comment_holds_a_machine_path() {
    let mut files = product_files();
    rust_files(&repo().join("dev"), &mut files);
    rust_files(&repo().join("shared/tests"), &mut files);
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let comment = line.trim_start();
            if comment.starts_with("//") {
                for prefix in ["/work/", "/home/", "/Users/", "/root/", "/tmp/"] {
                    assert!(!comment.contains(prefix), "{}:{}: {line}", file.display(), i + 1);
                }
            }
        }
    }
}

#[test]
fn openapi_documents_exactly_the_error_codes() {
    let spec = fs::read_to_string(repo().join("openapi.yaml")).unwrap();
    // components.schemas.ErrorCode, to the next schema: its `enum:` lists one code a line.
    // (No YAML parser among the dev-dependencies; the layout is fixed enough to read as text.)
    let start = spec.find("\n    ErrorCode:\n").expect("the ErrorCode schema") + 1;
    let schema =
        spec[start..].lines().skip(1).take_while(|line| line.is_empty() || line.starts_with("     "));
    let listed: Vec<&str> = schema
        .skip_while(|line| line.trim_end() != "      enum:")
        .skip(1)
        .map_while(|line| line.strip_prefix("        - "))
        .map(str::trim_end)
        .collect();
    let ours: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(listed, ours, "openapi.yaml's ErrorCode enum and ErrorCode::ALL (in its order) differ");
    // Error.error is that enum, or an auth server's own OAuth code.
    let error = &spec[spec.find("\n    Error:\n").expect("the Error schema")..];
    let field = &error
        [error.find("\n        error:\n").expect("Error.error")..error.find("\n        status:\n").unwrap()];
    assert!(
        field.contains("$ref: '#/components/schemas/ErrorCode'"),
        "Error.error does not refer to ErrorCode"
    );

    // Every example's `error` is one of ours or an OAuth code of the auth server's.
    for line in spec.lines() {
        if let Some(code) = line.trim().strip_prefix("error: ") {
            let known =
                ErrorCode::from_wire(code).is_some() || OAuthError::parse(code) != OAuthError::Unrecognised;
            assert!(known, "openapi.yaml example error {code:?} is neither ours nor a known OAuth code");
        }
    }
}

/// The deployed `/sms/token` can always finish its work: the default token budget and the
/// completion's DynamoDB calls (each within the operation time-out) fit inside the function's
/// timeout, which fits inside API Gateway's 30 s. (Its lease outlives the timeout by design:
/// `flow/complete.rs` takes it from the invocation's deadline.)
#[test]
fn sms_tokens_timeout_holds_the_token_budget_and_the_store_calls() {
    let template = fs::read_to_string(repo().join("template.yaml")).unwrap();
    let function = &template[template.find("  SmsTokenFunction:").expect("SmsTokenFunction")..];
    let timeout: u64 = function
        .lines()
        .find_map(|line| line.trim().strip_prefix("Timeout: "))
        .expect("its Timeout")
        .parse()
        .unwrap();
    let config = shared::config::Config::parse(
        r#"{"realm": "r", "auth_servers": [{"id": "a", "url": "https://a.example/auth"}],
            "client_id": "c", "client_secret": "s", "clients": [{"user_flow": "pvn_sms"}]}"#,
        None,
    )
    .unwrap();
    let needed = config.upstream.token_budget + 2 * shared::aws::DEFAULT_DYNAMODB_OPERATION_TIMEOUT;
    let timeout = std::time::Duration::from_secs(timeout);
    assert!(needed < timeout, "SmsTokenFunction's Timeout {timeout:?} cannot hold {needed:?}");
    assert!(timeout < std::time::Duration::from_secs(30), "API Gateway answers 503 after 30 s");
}
