//! The Logs Insights queries that `template.yaml` saves for operators (README, "Analysing flows in
//! CloudWatch") read what the code really logs: every field a query names is a key of a summary
//! line the real `local-api` process wrote for an endpoint whose log group the query reads, every
//! event, endpoint or error code it compares with is one the code logs, and the README shows each
//! query exactly as the template saves it. The alarms' metrics are the ones the code emits.
//!
//! `template.yaml` carries CloudFormation tags (`!Ref`, `!Sub`) that plain YAML parsers refuse, so
//! a small line reader takes out what is checked: resources, their `Type`, the `QueryString`
//! block scalars, `LogGroupNames`, the functions' log groups and paths, the alarms' dimensions.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{CLIENT, Instance, PHONE, logs::run_every_endpoint};
use serde_json::{Value, json};
use shared::{limits::Limit, metrics::bounded_outcome};

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");

/// The questions of the issue, each a saved query (`<stack name>/<name>`).
const REQUIRED_QUERIES: [&str; 6] = [
    "funnel-per-hour",
    "failures-by-error",
    "conversion-by-country",
    "pumping-suspects",
    "fraud-guard-pauses",
    "upstream-latency",
];

/// Logs Insights QL: the commands, the functions and the keywords a query may use (CloudWatch Logs
/// user guide, "CloudWatch Logs Insights language query syntax"). A name outside these is a field.
const COMMANDS: &[&str] =
    &["fields", "filter", "stats", "sort", "limit", "parse", "display", "dedup", "unmask"];
/// (Function names in lower case.)
const FUNCTIONS: &str = "avg count count_distinct max min pct stddev sum earliest latest sortsfirst \
    sortslast ispresent coalesce abs ceil floor greatest least log sqrt isempty isblank concat ltrim rtrim \
    trim strlen toupper tolower substr replace strcontains datefloor dateceil frommillis tomillis bin \
    isvalidip isipv4insubnet";
const KEYWORDS: &[&str] = &["by", "as", "asc", "desc", "and", "or", "not", "in", "like"];
/// Fields CloudWatch adds to every event (the code cannot log them).
const CLOUDWATCH_FIELDS: &[&str] = &["@timestamp", "@message", "@logStream", "@log", "@ingestionTime"];

// ---- template.yaml, read line by line ----

struct Resource {
    name: String,
    kind: String,
    /// The resource's lines after its name, as written.
    lines: Vec<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

impl Resource {
    /// The value of the first `key: value` line.
    fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}:");
        self.lines.iter().find_map(|line| line.trim().strip_prefix(&prefix).map(str::trim))
    }

    /// The items of the block list under `key:`.
    fn list(&self, key: &str) -> Vec<String> {
        let at = format!("{key}:");
        let Some(start) = self.lines.iter().position(|line| line.trim() == at) else { return Vec::new() };
        let level = indent(&self.lines[start]);
        self.lines[start + 1..]
            .iter()
            .take_while(|line| line.trim().is_empty() || indent(line) > level)
            .filter_map(|line| line.trim().strip_prefix("- ").map(str::to_owned))
            .collect()
    }

    /// The text of the literal block scalar `key: |` (or `key: !Sub |`), without its indentation.
    fn block(&self, key: &str) -> Option<String> {
        let start = self
            .lines
            .iter()
            .position(|line| line.trim() == format!("{key}: |") || line.trim() == format!("{key}: !Sub |"))?;
        let level = indent(&self.lines[start]);
        let body: Vec<&str> = self.lines[start + 1..]
            .iter()
            .map(String::as_str)
            .take_while(|line| line.trim().is_empty() || indent(line) > level)
            .collect();
        let margin = body.iter().filter(|line| !line.trim().is_empty()).map(|line| indent(line)).min()?;
        let text: Vec<&str> = body.iter().map(|line| line.get(margin..).unwrap_or("")).collect();
        Some(text.join("\n").trim_end().to_owned())
    }
}

/// The resources of the template, in order.
fn resources(template: &str) -> Vec<Resource> {
    let mut inside = false;
    let mut found: Vec<Resource> = Vec::new();
    for line in template.lines() {
        if indent(line) == 0 && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == "Resources:";
            continue;
        }
        if !inside {
            continue;
        }
        if indent(line) == 2
            && !line.trim_start().starts_with('#')
            && let Some(name) = line.trim().strip_suffix(':')
        {
            found.push(Resource { name: name.to_owned(), kind: String::new(), lines: Vec::new() });
            continue;
        }
        if let Some(resource) = found.last_mut() {
            resource.lines.push(line.to_owned());
        }
    }
    for resource in &mut found {
        resource.kind = resource.value("Type").unwrap_or_default().to_owned();
    }
    found
}

fn reference(item: &str) -> Option<&str> {
    item.strip_prefix("!Ref ").map(str::trim)
}

struct SavedQuery {
    resource: String,
    /// The part after `${AWS::StackName}/`.
    name: String,
    log_groups: Vec<String>,
    text: String,
}

fn saved_queries(resources: &[Resource]) -> Vec<SavedQuery> {
    resources
        .iter()
        .filter(|r| r.kind == "AWS::Logs::QueryDefinition")
        .map(|r| {
            let name = r.value("Name").unwrap_or_else(|| panic!("{} has no Name", r.name));
            let name = name.trim_start_matches("!Sub").trim().trim_matches('"');
            let name = name.strip_prefix("${AWS::StackName}/").unwrap_or_else(|| {
                panic!(
                    "{}: name the query \"${{AWS::StackName}}/...\" so it sits in the stack's folder",
                    r.name
                )
            });
            SavedQuery {
                resource: r.name.clone(),
                name: name.to_owned(),
                log_groups: r.list("LogGroupNames"),
                text: r.block("QueryString").unwrap_or_else(|| panic!("{}: QueryString: | block", r.name)),
            }
        })
        .collect()
}

/// Which endpoint logs into which log group: each function's `LoggingConfig.LogGroup` and the
/// path of its API event (`/sms/auth` logs as endpoint `sms_auth`).
fn endpoints_by_log_group(resources: &[Resource]) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for function in resources.iter().filter(|r| r.kind == "AWS::Serverless::Function") {
        let group = function.value("LogGroup").and_then(reference);
        let group =
            group.unwrap_or_else(|| panic!("{} logs into no log group of the template", function.name));
        for line in &function.lines {
            if let Some(path) = line.trim().strip_prefix("Path:") {
                let endpoint = path.trim().trim_matches('/').replace('/', "_");
                map.entry(group.to_owned()).or_default().insert(endpoint);
            }
        }
    }
    map
}

// ---- Logs Insights QL, tokenised ----

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// A name: command, function, keyword, alias or field.
    Name(String),
    /// A field name in backticks.
    Quoted(String),
    Str(String),
    Number(String),
    Regex(String),
    Op(String),
}

fn tokens(query: &str) -> Vec<Token> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let take_until = |i: &mut usize, end: char| -> String {
        let mut text = String::new();
        *i += 1;
        while *i < chars.len() && chars[*i] != end {
            if chars[*i] == '\\' && *i + 1 < chars.len() {
                *i += 1;
            }
            text.push(chars[*i]);
            *i += 1;
        }
        assert!(*i < chars.len(), "unterminated {end} in query:\n{query}");
        *i += 1;
        text
    };
    while i < chars.len() {
        let c = chars[i];
        let word = |i: &mut usize, ok: fn(char) -> bool| {
            let start = *i;
            while *i < chars.len() && ok(chars[*i]) {
                *i += 1;
            }
            chars[start..*i].iter().collect::<String>()
        };
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' => out.push(Token::Str(take_until(&mut i, c))),
            '`' => out.push(Token::Quoted(take_until(&mut i, '`'))),
            '/' if matches!(out.last(), Some(Token::Name(n)) if n == "like")
                || matches!(out.last(), Some(Token::Op(o)) if o == "=~") =>
            {
                out.push(Token::Regex(take_until(&mut i, '/')))
            }
            _ if c.is_ascii_digit() => {
                out.push(Token::Number(word(&mut i, |c| c.is_ascii_alphanumeric() || c == '.')))
            }
            _ if c.is_alphabetic() || c == '_' || c == '@' => {
                out.push(Token::Name(word(&mut i, |c| c.is_alphanumeric() || "_.@".contains(c))))
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if ["!=", "<=", ">=", "=~"].contains(&two.as_str()) { two } else { c.to_string() };
                i += op.chars().count();
                out.push(Token::Op(op));
            }
        }
    }
    out
}

/// What a query reads: its fields, and each string literal with the field it is compared with.
#[derive(Debug, Default)]
struct Reads {
    fields: BTreeSet<String>,
    literals: Vec<(String, String)>,
}

fn reads(query: &str) -> Result<Reads, String> {
    let tokens = tokens(query);
    let mut names = BTreeSet::new();
    let mut aliases = BTreeSet::new();
    let mut reads = Reads::default();
    for (i, token) in tokens.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| &tokens[p]);
        let next = tokens.get(i + 1);
        // A name in a command's place must be a command, one before `(` a function, and one
        // starting with @ a field CloudWatch adds; other names are aliases, keywords or fields.
        let known = match token {
            Token::Name(name) if previous.is_none() || previous == Some(&Token::Op("|".into())) => {
                COMMANDS.contains(&name.as_str()).then_some(()).ok_or("is not a Logs Insights command")
            }
            Token::Name(name) if next == Some(&Token::Op("(".into())) => FUNCTIONS
                .split_whitespace()
                .any(|function| function == name.to_lowercase())
                .then_some(())
                .ok_or("is not a Logs Insights function"),
            Token::Name(name) if previous == Some(&Token::Name("as".into())) => {
                aliases.insert(name.clone());
                Ok(())
            }
            Token::Name(name) if KEYWORDS.contains(&name.to_lowercase().as_str()) => Ok(()),
            Token::Name(name) if name.starts_with('@') => CLOUDWATCH_FIELDS
                .contains(&name.as_str())
                .then_some(())
                .ok_or("is not a field CloudWatch provides"),
            Token::Name(name) | Token::Quoted(name) => {
                names.insert(name.clone());
                Ok(())
            }
            Token::Str(literal) => match subject(&tokens, i) {
                Some(field) => {
                    reads.literals.push((field, literal.clone()));
                    Ok(())
                }
                None => Err("is compared with no field the test recognises"),
            },
            _ => Ok(()),
        };
        known.map_err(|problem| format!("{} {problem}", show(token)))?;
    }
    reads.fields = names.difference(&aliases).cloned().collect();
    Ok(reads)
}

/// A token as the query writes it, for messages.
fn show(token: &Token) -> String {
    match token {
        Token::Name(name) | Token::Number(name) | Token::Op(name) => format!("`{name}`"),
        Token::Quoted(name) => format!("`{name}` (in backticks)"),
        Token::Str(text) => format!("\"{text}\""),
        Token::Regex(text) => format!("/{text}/"),
    }
}

/// The field a string literal at `at` is compared with: `field = "x"`, `field != "x"`,
/// `field in ["x", "y"]`, `field like "x"`, `strcontains(field, "x")`.
fn subject(tokens: &[Token], at: usize) -> Option<String> {
    let mut j = at.checked_sub(1)?;
    while matches!(&tokens[j], Token::Str(_))
        || [Token::Op(",".into()), Token::Op("[".into())].contains(&tokens[j])
    {
        j = j.checked_sub(1)?;
    }
    let field = |t: &Token| match t {
        Token::Name(n) | Token::Quoted(n) => Some(n.clone()),
        _ => None,
    };
    match &tokens[j] {
        Token::Op(op) if ["=", "!="].contains(&op.as_str()) => field(tokens.get(j.checked_sub(1)?)?),
        Token::Name(kw) if kw == "in" || kw == "like" => field(tokens.get(j.checked_sub(1)?)?),
        t if j >= 2
            && tokens[j - 1] == Token::Op("(".into())
            && tokens[j - 2] == Token::Name("strcontains".into()) =>
        {
            field(t)
        }
        _ => None,
    }
}

// ---- the checks ----

/// What the code logged, per endpoint: the keys of its summary lines and its event names.
#[derive(Default)]
struct Logged {
    keys: BTreeMap<String, BTreeSet<String>>,
    events: BTreeMap<String, BTreeSet<String>>,
}

impl Logged {
    fn from(lines: &[Value]) -> Self {
        let mut logged = Self::default();
        for line in lines {
            let (Some(endpoint), Some(event)) = (line["endpoint"].as_str(), line["event"].as_str()) else {
                continue;
            };
            let keys = logged.keys.entry(endpoint.to_owned()).or_default();
            keys.extend(line.as_object().unwrap().keys().cloned());
            logged.events.entry(endpoint.to_owned()).or_default().insert(event.to_owned());
        }
        logged
    }
}

/// An error code the API answers with: `bounded_outcome` keeps exactly those (plus
/// `upstream_rejected`) and the endpoints' success words.
fn is_error_code(code: &str) -> bool {
    bounded_outcome(code) == code
        && !["sent", "verified", "logged", "read", "logged_out", "listed"].contains(&code)
}

/// The problems of one query against what the code logged into the log groups it reads.
fn problems(
    query: &str,
    reads_endpoints: &BTreeSet<String>,
    all_endpoints: &BTreeSet<String>,
    logged: &Logged,
) -> Vec<String> {
    let reads = match reads(query) {
        Ok(reads) => reads,
        Err(problem) => return vec![problem],
    };
    let mut problems = Vec::new();
    let keys: BTreeSet<&String> =
        reads_endpoints.iter().filter_map(|e| logged.keys.get(e)).flatten().collect();
    for field in &reads.fields {
        if !keys.contains(field) {
            problems.push(format!(
                "field `{field}` is in no line the endpoints {reads_endpoints:?} logged (keys: {keys:?})"
            ));
        }
    }
    let mut named_endpoints = BTreeSet::new();
    for (field, literal) in &reads.literals {
        match field.as_str() {
            "endpoint" => {
                named_endpoints.insert(literal.clone());
                if !logged.keys.contains_key(literal) {
                    problems.push(format!(
                        "endpoint \"{literal}\" never logged (logged: {:?})",
                        logged.keys.keys()
                    ));
                }
            }
            "event" => {
                // Logged in the run, or `<endpoint>_<error code>` of an endpoint that logs.
                let endpoint = logged.events.iter().find_map(|(endpoint, events)| {
                    let of_endpoint = literal
                        .strip_prefix(endpoint.as_str())
                        .and_then(|rest| rest.strip_prefix('_'))
                        .is_some_and(|rest| !rest.is_empty());
                    (events.contains(literal) || of_endpoint && is_error_code(&literal[endpoint.len() + 1..]))
                        .then(|| endpoint.clone())
                });
                match endpoint {
                    Some(endpoint) => {
                        named_endpoints.insert(endpoint);
                    }
                    None => problems.push(format!(
                        "event \"{literal}\" is neither logged nor <endpoint>_<error code> (logged: {:?})",
                        logged.events.values().flatten().collect::<Vec<_>>()
                    )),
                }
            }
            "error" if !is_error_code(literal) => {
                problems.push(format!("error \"{literal}\" is not an error code of the API"));
            }
            "outcome" if bounded_outcome(literal) != literal => {
                problems.push(format!("outcome \"{literal}\" is neither a success word nor an error code"));
            }
            "error" | "outcome" => {}
            "limit" if !Limit::ALL.iter().any(|limit| limit.name() == literal) => {
                problems.push(format!("limit \"{literal}\" is not a limit's name"));
            }
            "limit" => {}
            "flow_id" if literal.len() == 16 && literal.chars().all(|c| c.is_ascii_hexdigit()) => {}
            _ => problems.push(format!("no rule for comparing `{field}` with \"{literal}\": teach the test")),
        }
    }
    // A query about some endpoints reads their log groups; one about none reads them all.
    let needed = if named_endpoints.is_empty() { all_endpoints.clone() } else { named_endpoints };
    for endpoint in needed.difference(reads_endpoints) {
        problems.push(format!("reads no log group that {endpoint} logs into"));
    }
    problems
}

/// A rate-limited start: the only lines with `limit`, which the common run does not make. The
/// embedded config has the default limits, so a second SMS to one number at once is refused.
async fn rate_limited_start() -> Vec<Value> {
    let instance = Instance::spawn(&[], &[("SANDBOX_PORT", "0")]);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = http
            .post(format!("{}/sms/auth", instance.base))
            .json(&json!({ "client_id": CLIENT, "login_hint": PHONE }))
            .send()
            .await
            .expect("local-api answers");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 429], "the second SMS to one number at once is rate limited");
    let lines =
        instance.wait_for_lines(|lines| lines.iter().any(|l| l.contains("\"sms_auth_rate_limited\""))).await;
    lines.iter().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// A pause of the fraud guard, with its default settings: 30 SMS to one country that nobody
/// verifies. Its line is logged once; the next send to the country is refused.
async fn country_paused() -> Vec<Value> {
    let instance = Instance::spawn(&[], &[("SANDBOX_PORT", "0")]);
    let http = reqwest::Client::new();
    let start = async |phone: String| {
        let body = json!({ "client_id": CLIENT, "login_hint": phone });
        let response = http.post(format!("{}/sms/auth", instance.base)).json(&body).send().await;
        response.expect("local-api answers").status().as_u16()
    };
    for n in 0..30 {
        // One number per range, so only the fraud guard stands in the way.
        assert_eq!(start(format!("+4474{n:02}123456")).await, 200, "send {n}");
    }
    assert_eq!(start("+447499123456".into()).await, 429, "the country is paused");
    let lines = instance
        .wait_for_lines(|lines| lines.iter().any(|l| l.contains("\"limit\":\"country_paused\"")))
        .await;
    let paused = lines.iter().filter(|l| l.contains("\"fraud_guard_country_paused\"")).count();
    assert_eq!(paused, 1, "one WARN line per pause");
    lines.iter().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_saved_query_reads_fields_and_events_the_code_logs() {
    let template = std::fs::read_to_string(TEMPLATE).expect("template.yaml");
    let resources = resources(&template);
    let queries = saved_queries(&resources);
    let by_group = endpoints_by_log_group(&resources);
    let all_endpoints: BTreeSet<String> = by_group.values().flatten().cloned().collect();

    let (run, limited, paused) = tokio::join!(run_every_endpoint(), rate_limited_start(), country_paused());
    let mut lines = run.json_lines();
    lines.extend(limited);
    lines.extend(paused);
    let logged = Logged::from(&lines);
    assert!(logged.keys.get("sms_auth").is_some_and(|keys| keys.contains("limit")), "a rate-limited line");

    let mut failures = Vec::new();
    for query in &queries {
        let mut reads_endpoints = BTreeSet::new();
        for item in &query.log_groups {
            match reference(item).and_then(|group| by_group.get(group)) {
                Some(endpoints) => reads_endpoints.extend(endpoints.iter().cloned()),
                None => failures.push(format!("{}: {item} is not a function's log group", query.name)),
            }
        }
        for problem in problems(&query.text, &reads_endpoints, &all_endpoints, &logged) {
            failures.push(format!("{} ({}): {problem}", query.name, query.resource));
        }
    }
    assert!(failures.is_empty(), "the saved queries do not match the logs:\n{}", failures.join("\n"));

    let failures = dashboard_problems(&dashboard(&resources), &lines, &logged, &by_group, &all_endpoints);
    assert!(failures.is_empty(), "the dashboard does not match the code:\n{}", failures.join("\n"));

    // The alarms on the request metrics use metrics and outcomes the code emits.
    let emitted: BTreeSet<String> = lines
        .iter()
        .filter_map(|line| line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array())
        .flatten()
        .filter_map(|metric| metric["Name"].as_str().map(str::to_owned))
        .collect();
    for alarm in resources.iter().filter(|r| r.kind == "AWS::CloudWatch::Alarm") {
        for (i, line) in alarm.lines.iter().enumerate() {
            let line = line.trim();
            if line == "Namespace: !Ref MetricsNamespace" {
                let metric = alarm.lines[i + 1].trim().strip_prefix("MetricName:").map(str::trim);
                assert!(
                    metric.is_some_and(|m| emitted.contains(m)),
                    "{}: {metric:?} not in {emitted:?}",
                    alarm.name
                );
            }
        }
    }
}

// ---- the operator's dashboard ----

/// The dashboard's body as JSON, each `${Name}` of its `!Sub` left as `Name` (a log group's
/// resource name, `MetricsNamespace`, `AWS::Region`).
fn dashboard(resources: &[Resource]) -> Value {
    let board = resources.iter().find(|r| r.kind == "AWS::CloudWatch::Dashboard").expect("a dashboard");
    let mut body = board.block("DashboardBody").expect("DashboardBody: !Sub |");
    while let Some(start) = body.find("${") {
        let end = start + body[start..].find('}').expect("a closed ${...}");
        let name = body[start + 2..end].to_owned();
        body.replace_range(start..=end, &name);
    }
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("DashboardBody is not JSON: {e}\n{body}"))
}

/// What the code's metric lines declare: each metric's dimension sets, and each dimension's
/// values.
#[derive(Default)]
struct Emitted {
    dimension_sets: BTreeMap<String, BTreeSet<Vec<String>>>,
    values: BTreeMap<String, BTreeSet<String>>,
}

impl Emitted {
    fn from(lines: &[Value]) -> Self {
        let mut emitted = Self::default();
        for line in lines {
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            let (Some(metrics), Some(sets)) =
                (directive["Metrics"].as_array(), directive["Dimensions"].as_array())
            else {
                continue;
            };
            for metric in metrics.iter().filter_map(|m| m["Name"].as_str()) {
                for set in sets {
                    let mut names: Vec<String> =
                        set.as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
                    for name in &names {
                        emitted
                            .values
                            .entry(name.clone())
                            .or_default()
                            .insert(line[name].as_str().unwrap().to_owned());
                    }
                    names.sort();
                    emitted.dimension_sets.entry(metric.to_owned()).or_default().insert(names);
                }
            }
        }
        emitted
    }

    /// Whether `metric` is emitted in exactly the dimension set `dimensions`.
    fn has(&self, metric: &str, dimensions: &[&str]) -> bool {
        let mut dimensions: Vec<String> = dimensions.iter().map(|d| (*d).to_owned()).collect();
        dimensions.sort();
        self.dimension_sets.get(metric).is_some_and(|sets| sets.contains(&dimensions))
    }
}

/// Every metric, dimension and value a metric widget names is one the code emits, in the
/// template's namespace; every log widget's query passes the saved queries' checks on the log
/// groups it reads; and the dashboard shows what operators asked for.
fn dashboard_problems(
    board: &Value,
    lines: &[Value],
    logged: &Logged,
    by_group: &BTreeMap<String, BTreeSet<String>>,
    all_endpoints: &BTreeSet<String>,
) -> Vec<String> {
    let emitted = Emitted::from(lines);
    let mut problems = Vec::new();
    let widgets = board["widgets"].as_array().expect("widgets");
    for widget in widgets {
        let properties = &widget["properties"];
        let title = properties["title"].as_str().unwrap_or("(untitled)");
        let mut problem = |p: String| problems.push(format!("{title}: {p}"));
        match widget["type"].as_str() {
            Some("metric") => {
                let entries = properties["metrics"].as_array().expect("metrics");
                let ids: BTreeSet<&str> =
                    entries.iter().filter_map(|e| e.as_array()?.last()?["id"].as_str()).collect();
                for entry in entries {
                    let parts = entry.as_array().expect("a metric entry is an array");
                    if let Some(expression) = parts[0]["expression"].as_str() {
                        if let Some(search) = expression.strip_prefix("SEARCH('{") {
                            let (schema, rest) = search.split_once('}').expect("SEARCH('{...} ...')");
                            let mut schema = schema.split(',');
                            if schema.next() != Some("MetricsNamespace") {
                                problem(format!("{expression}: not the MetricsNamespace"));
                            }
                            let dimensions: Vec<&str> = schema.collect();
                            let metric = rest.split('"').nth(1).unwrap_or_default();
                            if !emitted.has(metric, &dimensions) {
                                problem(format!("{expression}: {metric} by {dimensions:?} is not emitted"));
                            }
                        } else {
                            for id in expression.split(|c: char| !c.is_alphanumeric() && c != '_') {
                                if id.starts_with(|c: char| c.is_ascii_lowercase()) && !ids.contains(id) {
                                    problem(format!("{expression}: no metric with id {id}"));
                                }
                            }
                        }
                        continue;
                    }
                    let names: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                    if names[0] != "MetricsNamespace" {
                        problem(format!("{names:?}: not the MetricsNamespace"));
                    }
                    let pairs: Vec<(&str, &str)> =
                        names[2..].chunks(2).map(|pair| (pair[0], pair[1])).collect();
                    let dimensions: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
                    if !emitted.has(names[1], &dimensions) {
                        problem(format!("{} by {dimensions:?} is not emitted", names[1]));
                    }
                    for (name, value) in pairs {
                        if !emitted.values.get(name).is_some_and(|values| values.contains(value)) {
                            problem(format!(
                                "{name} = {value} is never emitted ({:?})",
                                emitted.values.get(name)
                            ));
                        }
                    }
                }
            }
            Some("log") => {
                let mut query = properties["query"].as_str().expect("a log widget's query");
                let mut reads_endpoints = BTreeSet::new();
                while let Some(rest) = query.strip_prefix("SOURCE '") {
                    let (group, rest) = rest.split_once("' | ").expect("SOURCE 'group' | ...");
                    match by_group.get(group) {
                        Some(endpoints) => reads_endpoints.extend(endpoints.iter().cloned()),
                        None => problem(format!("{group} is not a function's log group")),
                    }
                    query = rest;
                }
                for p in self::problems(query, &reads_endpoints, all_endpoints, logged) {
                    problem(p);
                }
            }
            other => problem(format!("a widget of type {other:?}")),
        }
    }
    // What operators asked for, each somewhere on the board.
    let text = board.to_string();
    for (what, needle) in [
        ("SMS sent", r#""Requests","Endpoint","sms_auth","Outcome","sent""#),
        ("numbers verified", r#""Requests","Endpoint","sms_token","Outcome","verified""#),
        ("the funnel by country", "by country_code"),
        ("outcomes by error code", r#"Endpoint,Outcome} MetricName=\"Requests\""#),
        ("p50 latency per endpoint", r#"MetricName=\"Duration\"', 'p50'"#),
        ("p99 latency per endpoint", r#"MetricName=\"Duration\"', 'p99'"#),
        ("latency per upstream call", "pct(upstream_token_ms, 99)"),
        ("refusals by limit", "by endpoint, `limit`"),
        ("fraud-guard pauses", r#""FraudGuardPauses""#),
    ] {
        if !text.contains(needle) {
            problems.push(format!("the dashboard does not show {what} ({needle})"));
        }
    }
    problems
}

/// Dimension values and expression ids of the alarms are ones that can exist.
#[test]
fn alarms_name_real_dimensions_and_their_own_metrics() {
    let template = std::fs::read_to_string(TEMPLATE).expect("template.yaml");
    let resources = resources(&template);
    let endpoints: BTreeSet<String> = endpoints_by_log_group(&resources).into_values().flatten().collect();
    let alarms: Vec<&Resource> = resources.iter().filter(|r| r.kind == "AWS::CloudWatch::Alarm").collect();
    assert!(alarms.len() >= 3, "5xx, upstream errors and conversion alarms");
    for alarm in alarms {
        assert_eq!(
            alarm.value("Condition"),
            Some("HasAlarmTopic"),
            "{}: only with an AlarmTopicArn",
            alarm.name
        );
        let ids: BTreeSet<&str> =
            alarm.lines.iter().filter_map(|l| l.trim().strip_prefix("- Id:").map(str::trim)).collect();
        for (i, line) in alarm.lines.iter().enumerate() {
            let value =
                || alarm.lines[i + 1].trim().strip_prefix("Value:").map(str::trim).unwrap_or_default();
            match line.trim() {
                "- Name: Outcome" => assert_eq!(bounded_outcome(value()), value(), "{}: outcome", alarm.name),
                "- Name: Endpoint" => {
                    assert!(endpoints.contains(value()), "{}: endpoint {}", alarm.name, value())
                }
                _ => {}
            }
            if let Some(expression) = line.trim().strip_prefix("Expression:") {
                // Lower-case names are metric ids; FILL, IF, ... are functions; ${...} parameters.
                let mut rest = expression.replace("!Sub", "");
                while let Some(start) = rest.find("${") {
                    let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
                    rest.replace_range(start..end, "");
                }
                for id in rest.split(|c: char| !c.is_alphanumeric() && c != '_') {
                    if id.starts_with(|c: char| c.is_ascii_lowercase()) {
                        assert!(
                            ids.contains(id),
                            "{}: expression names {id}, not one of {ids:?}",
                            alarm.name
                        );
                    }
                }
            }
        }
    }
}

/// Every question of the issue has its saved query, each reads named log groups, and the README
/// shows each query exactly as the template saves it.
#[test]
fn the_queries_are_saved_and_the_readme_shows_them_as_saved() {
    let template = std::fs::read_to_string(TEMPLATE).expect("template.yaml");
    let readme = std::fs::read_to_string(README).expect("README.md");
    let queries = saved_queries(&resources(&template));
    let names: Vec<&str> = queries.iter().map(|q| q.name.as_str()).collect();
    for required in REQUIRED_QUERIES {
        assert!(names.contains(&required), "no saved query {required}: {names:?}");
    }
    let mut blocks = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```text") => block = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                block = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    for query in &queries {
        assert!(
            !query.log_groups.is_empty() && query.log_groups.iter().all(|g| reference(g).is_some()),
            "{}: LogGroupNames lists the stack's log groups (!Ref): {:?}",
            query.name,
            query.log_groups
        );
        assert!(
            blocks.contains(&query.text),
            "README shows no ```text block identical to {}:\n{}",
            query.name,
            query.text
        );
    }
}

/// The reader itself: fields found, aliases, functions, keywords, @-fields and literals left out;
/// a misspelt field, an unknown event and a wrong function are caught.
#[test]
fn the_query_reader_finds_fields_and_catches_mistakes() {
    let query = r#"# a comment naming nothing
filter ispresent(`source`) and event in ["sms_auth_sent", "sms_token_verified"]
| stats sum(strcontains(event, "sms_auth_sent")) as sent, pct(upstream_auth_ms, 99) as p99
  by bin(1h) as hour, `limit`
| sort sent desc | limit 5"#;
    let read = reads(query).unwrap();
    let fields: Vec<&str> = read.fields.iter().map(String::as_str).collect();
    assert_eq!(fields, ["event", "limit", "source", "upstream_auth_ms"]);
    assert_eq!(read.literals.len(), 3);
    assert!(read.literals.iter().all(|(field, _)| field == "event"), "{:?}", read.literals);

    let line = json!({
        "event": "sms_auth_sent", "endpoint": "sms_auth", "outcome": "sent", "status": 200,
        "country_code": 44, "source": "3030a1d1ae5d5af8", "upstream_auth_ms": 7.1
    });
    let logged = Logged::from(&[line]);
    let auth: BTreeSet<String> = ["sms_auth".to_owned()].into();
    let check = |q: &str| problems(q, &auth, &auth, &logged);
    assert_eq!(check("stats count(*) by country_code"), Vec::<String>::new());
    assert!(check("stats count(*) by contry_code")[0].contains("`contry_code`"));
    assert!(check("filter event = \"sms_auth_snet\"")[0].contains("sms_auth_snet"));
    assert_eq!(check("filter event = \"sms_auth_rate_limited\""), Vec::<String>::new(), "an error code");
    assert!(check("filter endpoint = \"sms_token\"").iter().any(|p| p.contains("sms_token")));
    assert!(check("stats prct(upstream_auth_ms, 50)")[0].contains("prct"));
    assert!(check("filter ispresent(@logstream)")[0].contains("@logstream"));
    assert!(check("filter error = \"invalid_cod\"").iter().any(|p| p.contains("\"invalid_cod\"")));
    assert!(check("filter phone = \"+44\"").iter().any(|p| p.contains("no rule")));
}
