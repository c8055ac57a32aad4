#!/usr/bin/env python3
"""The deploy checks that need SAM CLI's own code (run by scripts/sam-check.sh, in the .venv).

1. samconfig.toml deploys what it says: for every environment, SAM CLI's own `sam deploy` command
   reads the file (its real click options and config provider; only the deploy itself is replaced
   by a capture), and every parameter override must arrive whole (as written after `Key=`), name a
   template parameter and satisfy its constraints; every required parameter is given; and
   `ServiceConfig` passes `local-api --check-config`.
2. The template, as SAM translates it, grants each function exactly the README's table "What each
   function may touch" (each DynamoDB action only with a `dynamodb:LeadingKeys` condition).
3. dev/sam-local/env-vars.json is in step with the template: one entry per function, holding
   exactly the variables the template declares for it (SAM CLI ignores any other), and its
   CONFIG_JSON passes `local-api --check-config` as a `sam local` container runs it.
4. What keeps the stack safe to run: LogLevel never above INFO, the table retained, protection and
   recovery as parameters, reserved concurrency on the SMS functions, JSON access logs with
   retention, no CORS `*` with credentials.

Usage: deploy-check.py LOCAL_API_BINARY
"""

import copy
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAILURES = []


def fail(message):
    FAILURES.append(message)
    print(f"deploy-check: FAIL {message}")


def check_config(local_api, text, extra_env=None):
    """`local-api --check-config -` on text: (passed, output)."""
    env = dict(os.environ, **(extra_env or {}))
    run = subprocess.run(
        [local_api, "--check-config", "-"], input=text, capture_output=True, text=True, env=env, timeout=60
    )
    return run.returncode == 0, (run.stdout + run.stderr).strip()


# ---- 1. samconfig.toml, read by `sam deploy` itself ----


def parse_as_sam_deploy(config_env):
    """The arguments `sam deploy --config-env ENV` would deploy with (run in a child process)."""
    import samcli.commands.deploy.command as deploy_command

    signature = inspect.signature(deploy_command.do_cli)
    captured = {}

    def capture(*args, **kwargs):
        captured.update(signature.bind(*args, **kwargs).arguments)

    deploy_command.do_cli = capture
    from samcli.cli.main import cli

    try:
        cli(["deploy", "--config-env", config_env], standalone_mode=False)
    except SystemExit:
        pass
    print(json.dumps({"parameter_overrides": captured.get("parameter_overrides")}))


def as_written(entry):
    """A `Key=Value` entry as its author means it: the value after the first `=`, unquoted."""
    key, _, value = entry.strip().partition("=")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return key, value


def meets_constraints(name, spec, value):
    kind = spec.get("Type", "String")
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"{name}={value!r} is not one of {spec['AllowedValues']}"
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            return f"{name}={value!r} is not a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"{name}={value} is below MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"{name}={value} is above MaxValue {spec['MaxValue']}"
    elif kind == "String" and "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        return f"{name}={value!r} does not match AllowedPattern {spec['AllowedPattern']}"
    return None


def check_samconfig(local_api, parameters):
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    environments = [env for env, commands in samconfig.items() if isinstance(commands, dict) and "deploy" in commands]
    if not environments:
        fail("samconfig.toml has no environment with deploy parameters")
    for env in environments:
        failures_before = len(FAILURES)
        written = samconfig[env]["deploy"]["parameters"].get("parameter_overrides", [])
        written = [written] if isinstance(written, str) else written
        intended = dict(as_written(entry) for entry in written)
        child = subprocess.run(
            [sys.executable, __file__, "--parse-as-sam-deploy", env],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
        )
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            fail(f"[{env}] sam deploy cannot read samconfig.toml: {child.stderr.strip()[-2000:]}")
            continue
        parsed = json.loads(lines[-1])["parameter_overrides"] or {}
        for key, value in intended.items():
            if parsed.get(key) != value:
                fail(f"[{env}] {key} reaches CloudFormation as {parsed.get(key)!r}, not as written ({len(value)} characters)")
        for key in parsed.keys() - intended.keys():
            fail(f"[{env}] sam deploy reads a parameter {key!r} that no entry names")
        for key, value in parsed.items():
            spec = parameters.get(key)
            if spec is None:
                fail(f"[{env}] {key} is not a parameter of template.yaml")
            elif problem := meets_constraints(key, spec, value):
                fail(f"[{env}] {problem}")
        for name, spec in parameters.items():
            if "Default" not in spec and name not in parsed:
                fail(f"[{env}] the required parameter {name} is not given")
        if "ServiceConfig" in parsed:
            passed, output = check_config(local_api, parsed["ServiceConfig"])
            if not passed:
                fail(f"[{env}] ServiceConfig does not pass local-api --check-config:\n{output}")
        if len(FAILURES) == failures_before:
            print(f"deploy-check: [{env}] sam deploy reads {len(parsed)} parameters, each whole and valid")


# ---- 2. least privilege: the translated template against the README table ----


def readme_grants():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What each function may touch"):]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    grants = {}
    for row in rows[2:]:
        if not row.startswith("| `"):
            break
        function, _route, actions, prefixes = [cell.strip() for cell in row.strip("|").split("|")]
        names = lambda cell: [name.strip().strip("`") for name in cell.split(",")]
        for action in names(actions):
            for prefix in names(prefixes):
                grants.setdefault(function.strip("`"), set()).add((f"dynamodb:{action}", prefix))
    return grants


def translate(template):
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    template = copy.deepcopy(template)
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/key"  # what `sam deploy` uploads
    return transform(template, {}, NoManagedPolicies())


def template_grants(translated, functions):
    grants = {}
    for function in functions:
        role = translated["Resources"][f"{function}Role"]["Properties"]
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                dynamodb = [a for a in actions if a.startswith("dynamodb:")]
                if not dynamodb:
                    continue
                keys = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
                if not keys:
                    fail(f"{function}: {dynamodb} without a dynamodb:LeadingKeys condition")
                    continue
                if statement.get("Resource") != {"Fn::GetAtt": ["StateTable", "Arn"]}:
                    fail(f"{function}: {dynamodb} on {statement.get('Resource')}, not only the state table")
                for action in dynamodb:
                    for key in keys:
                        grants.setdefault(function, set()).add((action, key))
    return grants


# ---- 3. the sam local env-vars file ----


def check_env_vars(local_api, template):
    failures_before = len(FAILURES)
    env_file = ROOT / "dev/sam-local/env-vars.json"
    values = json.loads(env_file.read_text())
    functions = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    if set(values) != set(functions):
        fail(f"{env_file.name} names {sorted(values)}, the template's functions are {sorted(functions)}")
    for name, resource in functions.items():
        declared = set(resource["Properties"].get("Environment", {}).get("Variables", {}))
        given = set(values.get(name, {}))
        if given - declared:
            fail(f"{env_file.name}: {name} sets {sorted(given - declared)}, which the template does not declare (sam local ignores them)")
        if declared - given:
            fail(f"{env_file.name}: {name} has no local value for {sorted(declared - given)}")
        if "CONFIG_JSON" in values.get(name, {}):
            passed, output = check_config(local_api, values[name]["CONFIG_JSON"], {"AWS_SAM_LOCAL": "true"})
            if not passed:
                fail(f"{env_file.name}: {name}'s CONFIG_JSON does not pass --check-config:\n{output}")
    if len(FAILURES) == failures_before:
        print(f"deploy-check: {env_file.relative_to(ROOT)} gives the {len(functions)} functions exactly their declared variables")


# ---- 4. the stack's safety properties ----


def check_safety(template):
    failures_before = len(FAILURES)
    parameters = template["Parameters"]
    resources = template["Resources"]
    levels = set(parameters["LogLevel"]["AllowedValues"])
    if not levels <= {"TRACE", "DEBUG", "INFO"}:
        fail(f"LogLevel allows {sorted(levels - {'TRACE', 'DEBUG', 'INFO'})}: the INFO summary and metric lines would be dropped")
    functions = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    for name, properties in functions.items():
        if properties.get("LoggingConfig", {}).get("ApplicationLogLevel") != {"Ref": "LogLevel"}:
            fail(f"{name}: ApplicationLogLevel is not the LogLevel parameter")
    table = resources["StateTable"]
    for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
        if table.get(policy) != "Retain":
            fail(f"StateTable: {policy} is not Retain")
    properties = table["Properties"]
    if properties.get("DeletionProtectionEnabled") != {"Ref": "TableDeletionProtection"}:
        fail("StateTable: DeletionProtectionEnabled is not the TableDeletionProtection parameter")
    pitr = properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
    if pitr != {"Ref": "TablePointInTimeRecovery"}:
        fail("StateTable: point-in-time recovery is not the TablePointInTimeRecovery parameter")
    for name, parameter in (("SmsAuthFunction", "SmsAuthReservedConcurrency"), ("SmsTokenFunction", "SmsTokenReservedConcurrency")):
        reserved = json.dumps(functions[name].get("ReservedConcurrentExecutions"))
        if f'"Ref": "{parameter}"' not in reserved:
            fail(f"{name}: ReservedConcurrentExecutions does not come from {parameter}")
    api = resources["Api"]["Properties"]
    access = api.get("AccessLogSettings", {})
    group = access.get("DestinationArn", {}).get("Fn::GetAtt", [None])[0]
    if group not in resources or "RetentionInDays" not in resources[group]["Properties"]:
        fail("Api: the access log has no log group of its own with a retention")
    try:
        line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", access.get("Format", "")))
        if any(re.search(r"ip|authorization|cookie|querystring", key, re.I) for key in line):
            fail(f"Api: the access log writes the caller's address or a credential: {sorted(line)}")
    except json.JSONDecodeError as error:
        fail(f"Api: the access log format is not one JSON object: {error}")
    rules = json.dumps(template.get("Rules", {}))
    if '"Fn::Contains": [{"Ref": "CorsAllowedOrigins"}, "*"]' not in rules:
        fail("no rule refuses CorsAllowedOrigins \"*\" (CORS allows credentials)")
    if json.dumps(api.get("CorsConfiguration")).count('"AllowCredentials": true') != 1:
        fail("Api: CorsConfiguration is expected to allow credentials only for the listed origins")
    if len(FAILURES) == failures_before:
        print("deploy-check: log level, table retention, reserved concurrency, access log and CORS rule in place")


def main():
    if sys.argv[1:2] == ["--parse-as-sam-deploy"]:
        return parse_as_sam_deploy(sys.argv[2])
    from samcli.yamlhelper import yaml_parse

    local_api = sys.argv[1]
    template = yaml_parse((ROOT / "template.yaml").read_text())
    check_samconfig(local_api, template["Parameters"])

    functions = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    granted = template_grants(translate(template), functions)
    documented = readme_grants()
    failures_before = len(FAILURES)
    for function in functions:
        if granted.get(function, set()) != documented.get(function, set()):
            fail(
                f"{function}: the template grants {sorted(granted.get(function, set()))}, "
                f"the README's table {sorted(documented.get(function, set()))}"
            )
    if len(FAILURES) == failures_before:
        print(f"deploy-check: the template's DynamoDB grants equal the README's table for all {len(functions)} functions")

    check_env_vars(local_api, template)
    check_safety(template)
    if FAILURES:
        sys.exit(f"deploy-check: {len(FAILURES)} problem(s)")


if __name__ == "__main__":
    main()
