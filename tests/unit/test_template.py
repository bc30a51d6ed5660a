"""template.yaml against the code: handlers that import, settings that are set, and the queue and bucket wiring.

Reads files only (sockets are blocked in this tier); `make lint` runs sam validate, cfn-lint and checkov on top.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assets_attach.api_document import build
from assets_attach.aws.job_store import JOBS_TABLE_ATTRIBUTES, JOBS_TABLE_INDEXES
from assets_attach.job_listing import REF_INDEX, STATUS_INDEX
from devstack.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PACKAGE = ROOT / "functions" / "assets_attach"

# Read by the code but never set in Lambda: the boto3 endpoint override of the local stack and tests, and the
# CLI's fallbacks when there is no ATLASSIAN_SECRET_ID.
NOT_FOR_LAMBDA = {
    "AWS_ENDPOINT_URL",
    "ATLASSIAN_EMAIL",
    "ATLASSIAN_API_TOKEN",
    "ASSETS_WORKSPACE_ID",
    "ATLASSIAN_SITE_URL",
    "ATLASSIAN_CLOUD_ID",
}
# Read by one function only, and set for that function (the handler's module name) by the template.
ONE_FUNCTION = {"CANARY_OBJECT_ID": "canary"}
# The contract's settings: the scan below must find at least these, or it has stopped seeing the code's reads.
CONTRACT_SETTINGS = {
    "ATLASSIAN_SECRET_ID",
    "ASSETS_API_BASE_URL",
    "MEDIA_ALLOWED_HOSTS",
    "ALLOWED_BUCKETS",
    "MAX_FILE_SIZE_BYTES",
    "MEDIA_UPLOAD_PATH",
    "S3_KEY_PREFIX",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def function_properties(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each function's properties with the Globals merged in (environment variables merged key by key)."""
    defaults = template.get("Globals", {}).get("Function", {})
    merged = {}
    for name, resource in resources_of(template, "AWS::Serverless::Function").items():
        props = {**defaults, **resource["Properties"]}
        variables = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **resource["Properties"].get("Environment", {}).get("Variables", {}),
        }
        props["Environment"] = {"Variables": variables}
        merged[name] = props
    return merged


def function_for(template: dict[str, Any], entry: str) -> dict[str, Any]:
    """The merged properties of the function whose handler is assets_attach.handlers.<entry>.lambda_handler."""
    handler = f"assets_attach.handlers.{entry}.lambda_handler"
    return next(p for p in function_properties(template).values() if p["Handler"] == handler)


def variables_read_by_code() -> set[str]:
    """UPPER_CASE names passed first to a call or a subscript in the package: os.environ["X"], env.get("X", ...),
    os.getenv("X"), get("X", ...), positive_int("X", ...)."""
    pattern = re.compile(r"""(?:\w\(|\[)\s*["']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)["']""")
    names: set[str] = set()
    for source in sorted(PACKAGE.rglob("*.py")):
        names.update(pattern.findall(source.read_text(encoding="utf-8")))
    return names


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# ---------------------------------------------------------------- functions


def test_there_is_a_webhook_a_worker_and_the_canary(template: dict[str, Any]) -> None:
    handlers = {p["Handler"] for p in function_properties(template).values()}
    assert handlers == {f"assets_attach.handlers.{entry}.lambda_handler" for entry in ("webhook", "worker", "canary")}


def test_every_function_is_built_from_the_one_code_uri(template: dict[str, Any]) -> None:
    for name, props in function_properties(template).items():
        assert props["CodeUri"].rstrip("/") == "functions", name
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Tracing"] == "Active", name


def test_every_handler_names_a_callable_in_the_package(template: dict[str, Any]) -> None:
    for name, props in function_properties(template).items():
        module_name, _, attribute = props["Handler"].rpartition(".")
        module = importlib.import_module(module_name)
        assert Path(module.__file__ or "").is_relative_to(PACKAGE), f"{name}: {module_name} is not from functions/"
        assert callable(getattr(module, attribute, None)), f"{name}: {props['Handler']} is not callable"


def test_the_scan_sees_the_settings_the_code_reads() -> None:
    assert variables_read_by_code() >= CONTRACT_SETTINGS


def test_every_variable_the_code_reads_is_set_for_every_function(template: dict[str, Any]) -> None:
    needed = variables_read_by_code() - NOT_FOR_LAMBDA
    assert set(ONE_FUNCTION) <= needed
    for name, props in function_properties(template).items():
        entry = props["Handler"].split(".")[-2]
        wanted = {v for v in needed if ONE_FUNCTION.get(v, entry) == entry}
        missing = wanted - set(props["Environment"]["Variables"])
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_the_template_sets_no_variable_the_code_ignores(template: dict[str, Any]) -> None:
    read = variables_read_by_code()
    for name, props in function_properties(template).items():
        unknown = {v for v in props["Environment"]["Variables"] if not v.startswith("POWERTOOLS_")} - read
        assert not unknown, f"{name} sets {sorted(unknown)}, which nothing in functions/assets_attach reads"


def test_powertools_settings(template: dict[str, Any]) -> None:
    for props in function_properties(template).values():
        variables = props["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == "assets-attach"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "AssetsAttach"
        assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_webhook_answers_within_api_gateways_limit(template: dict[str, Any]) -> None:
    webhook = function_for(template, "webhook")
    assert webhook["Timeout"] <= 29
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in webhook["Events"].values()}
    assert routes == {(method, path) for path, operations in build()["paths"].items() for method in operations}
    assert all(e["Type"] == "Api" for e in webhook["Events"].values())


# ---------------------------------------------------------------- queue


def test_worker_reads_the_jobs_queue_in_small_batches_reporting_item_failures(template: dict[str, Any]) -> None:
    (event,) = function_for(template, "worker")["Events"].values()
    assert event["Type"] == "SQS"
    props = event["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert props["BatchSize"] == 5
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}
    assert template["Parameters"]["WorkerMaxConcurrency"]["MinValue"] == 2  # SQS's own minimum


def test_visibility_timeout_is_at_least_six_times_the_worker_timeout(template: dict[str, Any]) -> None:
    queue = template["Resources"]["JobsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function_for(template, "worker")["Timeout"]


def test_max_receive_count_has_one_source(template: dict[str, Any]) -> None:
    redrive = template["Resources"]["JobsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    for props in function_properties(template).values():
        assert props["Environment"]["Variables"]["MAX_RECEIVE_COUNT"] == redrive["maxReceiveCount"]
    mapping, key, attribute = redrive["maxReceiveCount"]["Fn::FindInMap"]
    assert int(template["Mappings"][mapping][key][attribute]) == 5


def test_dead_letter_queue_keeps_messages_fourteen_days(template: dict[str, Any]) -> None:
    assert template["Resources"]["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


# ---------------------------------------------------------------- uploads bucket


def test_queue_policy_names_the_bucket_without_referring_to_it(template: dict[str, Any]) -> None:
    """The bucket depends on the queue policy (S3 checks the destination), so the policy must build the bucket's
    ARN from its name with Fn::Sub: a Ref or GetAtt of UploadsBucket would be a circular dependency."""
    policy = template["Resources"]["JobsQueuePolicy"]
    bucket = template["Resources"]["UploadsBucket"]
    assert bucket["DependsOn"] in ("JobsQueuePolicy", ["JobsQueuePolicy"])
    references = [n for n in walk(policy) if isinstance(n, dict) and ("Ref" in n or "Fn::GetAtt" in n)]
    assert not [r for r in references if "UploadsBucket" in (r.get("Ref"), (r.get("Fn::GetAtt") or [None])[0])]

    statement = next(s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow")
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    condition, created, existing = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::If"]
    assert condition == "CreateUploadsBucket"
    assert created == {"Fn::Sub": "arn:${AWS::Partition}:s3:::" + bucket["Properties"]["BucketName"]["Fn::Sub"]}
    assert existing == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ExistingUploadsBucket}"}


def test_uploads_under_the_key_prefix_notify_the_jobs_queue(template: dict[str, Any]) -> None:
    props = template["Resources"]["UploadsBucket"]["Properties"]
    (notification,) = props["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": {"Ref": "S3KeyPrefix"}}]
    for function in function_properties(template).values():
        assert function["Environment"]["Variables"]["S3_KEY_PREFIX"] == {"Ref": "S3KeyPrefix"}
    assert template["Parameters"]["S3KeyPrefix"]["Default"] == "attachments/"


def test_uploads_bucket_is_versioned_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    props = template["Resources"]["UploadsBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(props["PublicAccessBlockConfiguration"].values())
    (deny,) = template["Resources"]["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ---------------------------------------------------------------- least privilege


def iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield name, statement
    for name, policy in resources_of(template, "AWS::IAM::ManagedPolicy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement


def test_no_wildcard_resource_where_the_service_has_narrower_ones(template: dict[str, Any]) -> None:
    for name, statement in iam_statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Resource"] == "*" or statement["Resource"] == ["*"]:
            # X-Ray has no resource-level permissions.
            assert all(a.startswith("xray:") for a in actions), f"{name} {statement.get('Sid')}: Resource '*'"
        assert not any(a.endswith(":*") or a == "*" for a in actions), f"{name} {statement.get('Sid')}: {actions}"


def test_functions_use_their_own_roles_not_sams_broad_defaults(template: dict[str, Any]) -> None:
    for name, props in function_properties(template).items():
        assert "Role" in props, f"{name} would get SAM's AWSLambdaBasicExecutionRole and SQS execution role"
        assert "Policies" not in props, name


def test_each_role_allows_the_queue_calls_its_function_makes(template: dict[str, Any]) -> None:
    """The webhook queues jobs; the worker hands messages back with a delay and queues a job's continuation."""
    resources = template["Resources"]

    def actions(role: str) -> set[str]:
        found: set[str] = set()
        for policy in resources[role]["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                listed = statement["Action"]
                found |= set(listed if isinstance(listed, list) else [listed])
        return found

    assert "sqs:SendMessage" in actions("WebhookRole")
    assert {"sqs:SendMessage", "sqs:ChangeMessageVisibility"} <= actions("WorkerRole")


def test_dynamodb_tables_match_the_code(template: dict[str, Any]) -> None:
    tables = template["Resources"]
    jobs, idempotency = tables["JobsTable"]["Properties"], tables["IdempotencyTable"]["Properties"]
    assert jobs["KeySchema"] == [{"AttributeName": "jobId", "KeyType": "HASH"}]
    assert jobs["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert jobs["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert jobs["BillingMode"] == idempotency["BillingMode"] == "PAY_PER_REQUEST"


def test_the_jobs_table_has_the_indexes_the_job_store_lists_with(template: dict[str, Any]) -> None:
    """The store and the local stack use JOBS_TABLE_INDEXES; the template must declare the same ones."""
    jobs = template["Resources"]["JobsTable"]["Properties"]
    indexes = JOBS_TABLE_INDEXES
    assert sorted(jobs["GlobalSecondaryIndexes"], key=str) == sorted(indexes, key=str)
    key_attributes = {k["AttributeName"] for i in indexes for k in i["KeySchema"]} | {"jobId"}
    assert {a["AttributeName"] for a in jobs["AttributeDefinitions"]} == key_attributes
    assert sorted(jobs["AttributeDefinitions"], key=str) == sorted(JOBS_TABLE_ATTRIBUTES, key=str)
    assert {i["IndexName"] for i in indexes} == {REF_INDEX, STATUS_INDEX}


def test_only_the_webhook_may_query_the_jobs_indexes_and_never_scan(template: dict[str, Any]) -> None:
    def statements(role: str) -> list[dict[str, Any]]:
        props = template["Resources"][role]["Properties"]
        return [s for policy in props.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]

    shared = template["Resources"]["AttachmentsAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    every = [a for s in shared for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert "dynamodb:PutItem" in every  # a new job and its index items: one TransactWriteItems of puts
    assert not [a for a in every if a in ("dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem")]
    webhook = {s["Sid"]: s for s in statements("WebhookRole")}
    assert webhook["FindJobs"]["Action"] == "dynamodb:Query"
    assert webhook["FindJobs"]["Resource"] == [
        {"Fn::Sub": f"${{JobsTable.Arn}}/index/{name}"} for name in (REF_INDEX, STATUS_INDEX)
    ]
    batch_reads = webhook["ReadJobsAndPairsInBatches"]
    assert (batch_reads["Action"], batch_reads["Resource"]) == (
        "dynamodb:BatchGetItem",
        {"Fn::GetAtt": ["JobsTable", "Arn"]},
    )
    for role in ("WorkerRole", "WebhookRole"):
        assert not [s for s in statements(role) if "dynamodb:Scan" in str(s["Action"])]
    # Which routes the webhook serves: test_webhook_answers_within_api_gateways_limit holds them to openapi.json.


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {
        "WebhookUrl",
        "JobStatusUrlPattern",
        "UploadsBucketName",
        "JobsQueueUrl",
        "DeadLetterQueueUrl",
        "AtlassianSecretArn",
        "AlarmTopicArn",
    } <= set(outputs)
    assert outputs["WebhookUrl"]["Value"]["Fn::Sub"].endswith("/Prod/attachments")
    assert outputs["JobStatusUrlPattern"]["Value"]["Fn::Sub"].endswith("/Prod/attachments/jobs/{jobId}")


# ---------------------------------------------------------------- alarms


def alarm_on(template: dict[str, Any], namespace: str, metric: str) -> dict[str, Any]:
    (alarm,) = [
        r["Properties"]
        for r in resources_of(template, "AWS::CloudWatch::Alarm").values()
        if (r["Properties"]["Namespace"], r["Properties"]["MetricName"]) == (namespace, metric)
    ]
    return alarm


def fires_on_any_in_five_minutes(alarm: dict[str, Any]) -> None:
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == 300
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_api_5xx_answers_raise_an_alarm(template: dict[str, Any]) -> None:
    """The webhook function turns its exceptions into HTTP answers, so only the stage's 5XXError metric sees them."""
    alarm = alarm_on(template, "AWS/ApiGateway", "5XXError")
    api = template["Resources"]["Api"]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {"ApiName": api["Name"], "Stage": {"Ref": "Api.Stage"}}
    assert api["Name"] == {"Ref": "AWS::StackName"}  # SAM's default, which the dimension must match
    fires_on_any_in_five_minutes(alarm)


def test_failed_jobs_raise_an_alarm(template: dict[str, Any]) -> None:
    """JobsFailed is a Powertools metric: the functions' namespace and the default dimension service=<service>."""
    alarm = alarm_on(template, "AssetsAttach", "JobsFailed")
    (variables,) = {
        (v["POWERTOOLS_METRICS_NAMESPACE"], v["POWERTOOLS_SERVICE_NAME"])
        for v in (p["Environment"]["Variables"] for p in function_properties(template).values())
    }
    assert variables == ("AssetsAttach", "assets-attach")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "assets-attach"}]
    fires_on_any_in_five_minutes(alarm)


def test_function_errors_alarms_remain(template: dict[str, Any]) -> None:
    """Crashes and timeouts: for the webhook they also show as 502/504, for the worker nowhere else."""
    alarms = [r["Properties"] for r in resources_of(template, "AWS::CloudWatch::Alarm").values()]
    watched = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a["MetricName"] == "Errors"}
    assert watched == {"WebhookFunction", "WorkerFunction"}


# ---------------------------------------------------------------- transport and source restrictions


def test_dead_letter_queue_is_tls_only(template: dict[str, Any]) -> None:
    policies = resources_of(template, "AWS::SQS::QueuePolicy").values()
    (policy,) = [p["Properties"] for p in policies if p["Properties"]["Queues"] == [{"Ref": "DeadLetterQueue"}]]
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*"
    assert deny["Action"] == "sqs:*"
    assert deny["Resource"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_allowed_source_cidrs_restrict_post_attachments_when_set(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["AllowedSourceCidrs"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "")  # the default passes its own pattern
    assert all(re.fullmatch(parameter["AllowedPattern"], c) for c in ("104.192.136.0/21", "2401:1d80:3000::/36"))
    assert not re.fullmatch(parameter["AllowedPattern"], "10.0.0.1 /32")

    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert sum(g["Parameters"].count("AllowedSourceCidrs") for g in groups) == 1

    assert template["Conditions"]["HasAllowedSourceCidrs"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "AllowedSourceCidrs"}]}, ""]}]
    }
    api = template["Resources"]["Api"]["Properties"]
    allow, conditional = api["Policy"]["Statement"]
    # Everything is allowed unless the condition adds the Deny; an empty parameter leaves no Deny at all.
    assert allow == {
        "Sid": "AllowInvoke",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "execute-api:Invoke",
        "Resource": "execute-api:/*",
    }
    condition, deny, otherwise = conditional["Fn::If"]
    assert condition == "HasAllowedSourceCidrs"
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "execute-api:Invoke"
    assert deny["Resource"] == "execute-api:/*/POST/attachments"
    assert deny["Condition"] == {"NotIpAddress": {"aws:SourceIp": {"Ref": "AllowedSourceCidrs"}}}
    # A changed policy reaches the stage only with a new deployment.
    assert api["AlwaysDeploy"] is True


# ---------------------------------------------------------------- drift canary


CANARY_RESOURCES = {"CanaryFunction", "CanaryRole", "CanaryLogGroup", "CanaryFailedAlarm"}


def test_canary_parameters_default_to_off_and_daily(template: dict[str, Any]) -> None:
    object_id, schedule = template["Parameters"]["CanaryObjectId"], template["Parameters"]["CanarySchedule"]
    assert object_id["Type"] == schedule["Type"] == "String"
    assert object_id["Default"] == ""
    assert schedule["Default"] == "rate(1 day)"
    for value in ("", "1234", "5b8c0f1e-7d1a-4c6e-9f2b-0a1b2c3d4e5f:1234"):
        assert re.fullmatch(object_id["AllowedPattern"], value), value
    assert not re.fullmatch(object_id["AllowedPattern"], "HW-42")  # an id, not a key
    for value in ("rate(1 day)", "rate(6 hours)", "cron(0 6 * * ? *)"):
        assert re.fullmatch(schedule["AllowedPattern"], value), value
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    for parameter in ("CanaryObjectId", "CanarySchedule"):
        assert sum(g["Parameters"].count(parameter) for g in groups) == 1


def test_the_canary_exists_only_with_an_object_id(template: dict[str, Any]) -> None:
    assert template["Conditions"]["HasCanary"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CanaryObjectId"}, ""]}]}
    resources = template["Resources"]
    for name in CANARY_RESOURCES:
        assert resources[name].get("Condition") == "HasCanary", name
    # Nothing unconditional refers to a canary resource (it would not exist without the object id).
    for name, resource in resources.items():
        if resource.get("Condition") == "HasCanary":
            continue
        refs = {n.get("Ref") for n in walk(resource) if isinstance(n, dict)}
        refs |= {(n.get("Fn::GetAtt") or [None])[0] for n in walk(resource) if isinstance(n, dict)}
        assert not refs & CANARY_RESOURCES, name


def test_the_canary_runs_on_its_schedule_with_its_object(template: dict[str, Any]) -> None:
    canary = function_for(template, "canary")
    (event,) = canary["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "CanarySchedule"}
    assert canary["Environment"]["Variables"]["CANARY_OBJECT_ID"] == {"Ref": "CanaryObjectId"}
    assert canary["Environment"]["Variables"]["ATLASSIAN_SECRET_ID"]  # from the Globals, as the other functions
    assert canary["Role"] == {"Fn::GetAtt": ["CanaryRole", "Arn"]}
    assert canary["LoggingConfig"] == {"LogGroup": {"Ref": "CanaryLogGroup"}}


def test_the_canary_role_reads_the_secret_and_writes_its_logs_only(template: dict[str, Any]) -> None:
    role = template["Resources"]["CanaryRole"]["Properties"]
    assert "ManagedPolicyArns" not in role  # not the functions' shared S3 and DynamoDB access
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert set(statements) == {"WriteOwnLogs", "Tracing", "ReadAtlassianSecret"}
    assert statements["ReadAtlassianSecret"]["Action"] == "secretsmanager:GetSecretValue"
    shared = template["Resources"]["AttachmentsAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (secret,) = [s for s in shared if s["Sid"] == "ReadAtlassianSecret"]
    assert statements["ReadAtlassianSecret"]["Resource"] == secret["Resource"]
    assert statements["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": ["CanaryLogGroup", "Arn"]}


def test_a_failed_canary_run_raises_an_alarm_on_the_alarm_topic(template: dict[str, Any]) -> None:
    alarm = alarm_on(template, "AssetsAttach", "CanaryFailed")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "assets-attach"}]
    assert alarm["Statistic"] == "Maximum"  # the metric is 0 or 1 per run
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_webhook_may_read_and_write_jobs_but_never_delete_them(template: dict[str, Any]) -> None:
    """Issue 18 §11: DeleteItem on the jobs table for the worker alone (released claims and leases); BatchGetItem for
    the webhook alone (a listing's records; which Jira pairs "all" finds attached)."""
    jobs_table = {"Fn::GetAtt": ["JobsTable", "Arn"]}

    def actions(names: set[str]) -> set[str]:
        listed = [s["Action"] for n, s in iam_statements(template) if n in names and s["Resource"] == jobs_table]
        return {a for action in listed for a in (action if isinstance(action, list) else [action])}

    assert actions({"AttachmentsAccessPolicy"}) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert actions({"WebhookRole"}) == {"dynamodb:BatchGetItem"}
    assert actions({"WorkerRole"}) == {"dynamodb:DeleteItem"}


# Which service's actions each resource type of the template needs the deployer to hold (SAM's types included).
SERVICE_OF = {
    "AWS::Serverless::Function": "lambda",
    "AWS::Serverless::Api": "apigateway",
    "AWS::ApiGateway::Account": "apigateway",
    "AWS::IAM::Role": "iam",
    "AWS::IAM::ManagedPolicy": "iam",
    "AWS::Logs::LogGroup": "logs",
    "AWS::CloudWatch::Alarm": "cloudwatch",
    "AWS::CloudWatch::Dashboard": "cloudwatch",
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::SQS::Queue": "sqs",
    "AWS::SQS::QueuePolicy": "sqs",
    "AWS::SNS::Topic": "sns",
    "AWS::SNS::Subscription": "sns",
    "AWS::KMS::Key": "kms",
    "AWS::S3::Bucket": "s3",
    "AWS::S3::BucketPolicy": "s3",
    "AWS::SecretsManager::Secret": "secretsmanager",
    "AWS::CloudFormation::WaitConditionHandle": "cloudformation",
}
EVENT_SERVICE = {"Api": "apigateway", "SQS": "lambda", "Schedule": "events", "S3": "s3"}


def test_the_deployer_policy_covers_every_kind_of_resource_the_template_makes(template: dict[str, Any]) -> None:
    """deploy/deployer-policy.json (the README's least-privilege policy for `sam deploy`) stays true to the template."""
    policy = json.loads((TEMPLATE.parent / "deploy" / "deployer-policy.json").read_text())
    granted = {a.split(":", 1)[0] for s in policy["Statement"] for a in s["Action"]}
    kinds = {r["Type"] for r in template["Resources"].values()}
    unknown = kinds - set(SERVICE_OF)
    assert not unknown, f"say which service {unknown} needs in SERVICE_OF, and grant it in the policy"
    needed = {SERVICE_OF[k] for k in kinds} | {"cloudformation", "s3"}  # the stack, SAM's artifact bucket
    for function in resources_of(template, "AWS::Serverless::Function").values():
        needed |= {EVENT_SERVICE[e["Type"]] for e in function["Properties"].get("Events", {}).values()}
    assert needed <= granted, f"the deployer policy grants nothing of {needed - granted}"
    assert all(
        s["Resource"] != "*" or "Condition" in s or s["Action"] == ["cloudformation:ValidateTemplate"]
        for s in policy["Statement"]
    ), "every unscoped statement has a condition"


# ---------------------------------------------------------------- dashboard


def published_metrics() -> set[str]:
    """The metric names the package publishes (metrics.add_metric / single_metric)."""
    pattern = re.compile(r'(?:add_metric|single_metric)\(\s*name="(\w+)"')
    return {name for path in PACKAGE.rglob("*.py") for name in pattern.findall(path.read_text(encoding="utf-8"))}


def test_the_operators_dashboard_shows_what_the_code_publishes(template: dict[str, Any]) -> None:
    dashboard = template["Resources"]["OperationsDashboard"]["Properties"]
    body, variables = dashboard["DashboardBody"]["Fn::Sub"]
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["Service"] == environment["POWERTOOLS_SERVICE_NAME"]
    assert variables["Stage"] == {"Ref": "Api.Stage"}
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))["widgets"]
    lines = [(w["properties"], line) for w in widgets for line in w["properties"]["metrics"]]
    ours = {(line[1], line[-1].get("stat") or props["stat"]) for props, line in lines if line[0] == "AssetsAttach"}
    assert ours == {
        ("JobsAccepted", "Sum"),
        ("FilesAttached", "Sum"),
        ("JobsFailed", "Sum"),
        ("BytesAttached", "Sum"),
        ("AttachSeconds", "p50"),
        ("AttachSeconds", "p95"),
        ("AtlassianRateLimited", "Sum"),
    }
    assert {name for name, _ in ours} <= published_metrics(), "the dashboard names a metric nobody publishes"
    assert all(line[2:4] == ["service", "X"] for _, line in lines if line[0] == "AssetsAttach")
    assert "${DeadLetterQueue.QueueName}" in body and "ApproximateNumberOfMessagesVisible" in body
    assert template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"].endswith("${OperationsDashboard}")


def webhook_with_snapstart(template: dict[str, Any], on: bool) -> dict[str, Any]:
    """The webhook's properties as AWS::LanguageExtensions resolves them, before SAM's transform, for SnapStart."""
    assert template["Conditions"]["SnapStartOn"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}

    def resolved(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Fn::If"} and value["Fn::If"][0] == "SnapStartOn":
            return resolved(value["Fn::If"][1 if on else 2])
        return value

    properties = {name: resolved(v) for name, v in template["Resources"]["WebhookFunction"]["Properties"].items()}
    return {name: v for name, v in properties.items() if v != {"Ref": "AWS::NoValue"}}


def test_snapstart_is_off_by_default_and_then_the_webhook_is_as_before(template: dict[str, Any]) -> None:
    assert template["Parameters"]["SnapStart"]["Default"] == "false"
    webhook = webhook_with_snapstart(template, on=False)
    assert "AutoPublishAlias" not in webhook and "SnapStart" not in webhook
    # SAM takes only a string or a Ref as AutoPublishAlias: the language extensions resolve the Fn::If first.
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_snapstart_on_publishes_versions_under_an_alias_that_the_api_invokes(template: dict[str, Any]) -> None:
    webhook = webhook_with_snapstart(template, on=True)
    assert webhook["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert webhook["AutoPublishAlias"] == "live"
    # SAM points a function's own event sources at its AutoPublishAlias: every way in is one of these API events.
    assert {e["Type"] for e in webhook["Events"].values()} == {"Api"}
    assert all(e["Properties"]["RestApiId"] == {"Ref": "Api"} for e in webhook["Events"].values())
    permissions = resources_of(template, "AWS::Lambda::Permission")
    assert not [p for p in permissions.values() if "WebhookFunction" in str(p["Properties"]["FunctionName"])]
