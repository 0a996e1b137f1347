//! What an operator expects of the SAM template, checked on the CloudFormation that
//! `sam deploy` would send (the template expanded offline by SAM's own translator,
//! `tests/emulator/expand_sam.py`): every function logs JSON into a log group of its own
//! with the retention parameter and the platform log level parameter; the alarms exist
//! and notify the optional topic; failed action batches go to the failure queue the
//! alarm watches; the tables are on demand by default and provisioned with auto scaling
//! of every table and index when `TableCapacity` asks for it. cfn-lint and `sam validate
//! --lint` (in `tests/run`) check the rest; webhooks reach the ingest function through the
//! HTTP API by default, or through its own function URL when `IngestEndpoint` asks.

mod common;

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

fn expanded() -> Value {
    common::expanded_template()
}

fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[test]
fn every_function_logs_json_into_its_own_group_with_retention_and_alarms_notify_the_topic() {
    let template = expanded();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["LogRetentionDays"]["Default"], 30);
    assert_eq!(parameters["PlatformLogLevel"]["Default"], "WARN");
    assert_eq!(parameters["AlarmTopicArn"]["Default"], "");

    let functions = of_type(&template, "AWS::Lambda::Function");
    assert_eq!(functions.len(), 3, "ingest, actions, admin");
    for (name, function) in functions {
        let logging = &function["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{name}");
        assert_eq!(
            logging["SystemLogLevel"],
            json!({"Ref": "PlatformLogLevel"}),
            "{name}"
        );
        let group_name = logging["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no log group of its own"));
        let group = &template["Resources"][group_name];
        assert_eq!(group["Type"], "AWS::Logs::LogGroup", "{name}");
        assert_eq!(
            group["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"}),
            "{name}"
        );
        // The group is the one Lambda writes to: named after the function.
        let function_name = function["Properties"]["FunctionName"]["Fn::Sub"]
            .as_str()
            .unwrap();
        assert_eq!(
            group["Properties"]["LogGroupName"]["Fn::Sub"],
            format!("/aws/lambda/{function_name}"),
            "{name}"
        );
    }

    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    let mut names: Vec<&str> = alarms.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ActionsThrottlesAlarm",
            "FailedActionBatchesAlarm",
            "Ingest5xxAlarm",
            "IngestErrorsAlarm",
            "IngestThrottlesAlarm"
        ]
    );
    for (name, alarm) in &alarms {
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!({"Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}),
            "{name} notifies the topic when one is set"
        );
    }

    // Failed batches land in the queue the alarm watches.
    let mappings = of_type(&template, "AWS::Lambda::EventSourceMapping");
    assert_eq!(mappings.len(), 1);
    let mapping = &mappings[0].1["Properties"];
    assert_eq!(
        mapping["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["ActionsFailureQueue", "Arn"]})
    );
    // A record handed back because its store did not answer is retried for minutes,
    // and an invocation's wait for the store fits in the function's timeout.
    assert_eq!(mapping["MaximumRetryAttempts"], 10);
    let timeout = template["Resources"]["ActionsFunction"]["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    assert!(
        timeout >= inlet_aws::actions::STORE_PATIENCE.as_secs() + 15,
        "the actions function's timeout ({timeout} s) leaves no room after its store patience"
    );
    let pattern = mapping["FilterCriteria"]["Filters"][0]["Pattern"]
        .as_str()
        .unwrap();
    assert!(pattern.contains("\"queue\""), "{pattern}");
    let watched = &template["Resources"]["FailedActionBatchesAlarm"]["Properties"]["Dimensions"][0];
    assert_eq!(
        watched["Value"],
        json!({"Fn::GetAtt": ["ActionsFailureQueue", "QueueName"]})
    );
}

#[test]
fn each_function_s_aws_calls_fit_inside_its_timeout() {
    use inlet_aws::clients::{ClientSettings, INGEST_SEQUENTIAL_CALLS};
    let template = expanded();
    let timeout = |name: &str| {
        std::time::Duration::from_secs(
            template["Resources"][name]["Properties"]["Timeout"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name} has a timeout")),
        )
    };
    // The longest chain of calls one webhook makes, each at its operation timeout,
    // leaves the ingest function time to answer.
    let ingest = ClientSettings::INGEST.operation_timeout * INGEST_SEQUENTIAL_CALLS;
    assert!(
        ingest + std::time::Duration::from_millis(500) <= timeout("IngestFunction"),
        "{ingest:?} of calls in a {:?} function",
        timeout("IngestFunction")
    );
    // The actions function stops waiting for its store in time to report the record.
    let actions =
        inlet_aws::actions::STORE_PATIENCE + ClientSettings::ACTIONS.operation_timeout * 2;
    assert!(actions <= timeout("ActionsFunction"), "{actions:?}");
    // A replay: the ingest's calls, the original's read in place of the token's.
    let admin = ClientSettings::ADMIN.operation_timeout * INGEST_SEQUENTIAL_CALLS;
    assert!(admin < timeout("AdminFunction"), "{admin:?}");
}

/// `template` as CloudFormation would deploy it with these conditions' values: the
/// resources whose condition is false left out, each `Fn::If` on one of them replaced by
/// its branch and `AWS::NoValue` removed (other conditions are left as they are).
fn resolved(template: &Value, conditions: &[(&str, bool)]) -> Value {
    let value_of = |name: &str| conditions.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    fn resolve(value: &Value, value_of: &dyn Fn(&str) -> Option<bool>) -> Option<Value> {
        match value {
            Value::Object(map) if map.len() == 1 && map.contains_key("Fn::If") => {
                let branches = map["Fn::If"].as_array().unwrap();
                match value_of(branches[0].as_str().unwrap()) {
                    Some(true) => resolve(&branches[1], value_of),
                    Some(false) => resolve(&branches[2], value_of),
                    None => Some(value.clone()),
                }
            }
            Value::Object(map) if map.get("Ref") == Some(&json!("AWS::NoValue")) => None,
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter_map(|(k, v)| resolve(v, value_of).map(|v| (k.clone(), v)))
                    .collect::<Map<_, _>>(),
            )),
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|v| resolve(v, value_of)).collect(),
            )),
            other => Some(other.clone()),
        }
    }
    let section = |name: &str| {
        template[name]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| {
                r.get("Condition")
                    .and_then(Value::as_str)
                    .and_then(value_of)
                    .unwrap_or(true)
            })
            .map(|(name, r)| (name.clone(), resolve(r, &value_of).unwrap()))
            .collect::<Map<_, _>>()
    };
    json!({ "Resources": section("Resources"), "Outputs": section("Outputs") })
}

fn resolved_for_capacity(template: &Value, capacity: &str) -> Value {
    resolved(
        template,
        &[("ProvisionedCapacity", capacity == "Provisioned")],
    )
}

#[test]
fn tables_are_on_demand_by_default_and_provisioned_with_auto_scaling_when_asked() {
    let template = expanded();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["TableCapacity"]["Default"], "OnDemand");
    assert_eq!(
        parameters["TableCapacity"]["AllowedValues"],
        json!(["OnDemand", "Provisioned"])
    );
    assert_eq!(parameters["ProvisionedTargetUtilization"]["Default"], 70);
    let scaled_tables = ["IdempotencyTable", "EventsTable", "DirectoryTable"];
    let min_units = json!({"Ref": "ProvisionedMinUnits"});

    let on_demand = resolved_for_capacity(&template, "OnDemand");
    for (name, table) in of_type(&on_demand, "AWS::DynamoDB::Table") {
        let properties = &table["Properties"];
        assert_eq!(properties["BillingMode"], "PAY_PER_REQUEST", "{name}");
        assert!(properties.get("ProvisionedThroughput").is_none(), "{name}");
        for index in properties["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(index.get("ProvisionedThroughput").is_none(), "{name}");
        }
    }
    assert!(of_type(&on_demand, "AWS::ApplicationAutoScaling::ScalableTarget").is_empty());
    assert!(of_type(&on_demand, "AWS::ApplicationAutoScaling::ScalingPolicy").is_empty());

    let provisioned = resolved_for_capacity(&template, "Provisioned");
    let resources = &provisioned["Resources"];
    for name in scaled_tables {
        let properties = &resources[name]["Properties"];
        assert_eq!(properties["BillingMode"], "PROVISIONED", "{name}");
        assert_eq!(
            properties["ProvisionedThroughput"],
            json!({"ReadCapacityUnits": min_units, "WriteCapacityUnits": min_units}),
            "{name}"
        );
    }
    let index = &resources["EventsTable"]["Properties"]["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"], "gsi1");
    assert_eq!(
        index["ProvisionedThroughput"],
        json!({"ReadCapacityUnits": min_units, "WriteCapacityUnits": min_units})
    );
    // The config table is read a few times per cold start: on demand either way.
    assert_eq!(
        resources["ConfigTable"]["Properties"]["BillingMode"],
        "PAY_PER_REQUEST"
    );

    // Every table and the index scale reads and writes, each with one target-tracking
    // policy on the matching utilisation metric.
    let targets = of_type(&provisioned, "AWS::ApplicationAutoScaling::ScalableTarget");
    let scaled: BTreeSet<(String, String)> = targets
        .iter()
        .map(|(_, t)| {
            let p = &t["Properties"];
            assert_eq!(p["ServiceNamespace"], "dynamodb");
            assert_eq!(p["MinCapacity"], min_units);
            assert_eq!(p["MaxCapacity"], json!({"Ref": "ProvisionedMaxUnits"}));
            (
                p["ResourceId"]["Fn::Sub"].as_str().unwrap().to_string(),
                p["ScalableDimension"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut expected = BTreeSet::new();
    for (resource, kind) in [
        ("table/${IdempotencyTable}", "table"),
        ("table/${EventsTable}", "table"),
        ("table/${EventsTable}/index/gsi1", "index"),
        ("table/${DirectoryTable}", "table"),
    ] {
        for unit in ["Read", "Write"] {
            expected.insert((
                resource.to_string(),
                format!("dynamodb:{kind}:{unit}CapacityUnits"),
            ));
        }
    }
    assert_eq!(scaled, expected);
    let policies = of_type(&provisioned, "AWS::ApplicationAutoScaling::ScalingPolicy");
    assert_eq!(policies.len(), targets.len());
    let mut covered = BTreeSet::new();
    for (name, policy) in &policies {
        let p = &policy["Properties"];
        assert_eq!(p["PolicyType"], "TargetTrackingScaling", "{name}");
        let target_name = p["ScalingTargetId"]["Ref"].as_str().unwrap();
        assert!(
            covered.insert(target_name),
            "{target_name} has two policies"
        );
        let dimension = resources[target_name]["Properties"]["ScalableDimension"]
            .as_str()
            .unwrap();
        let tracking = &p["TargetTrackingScalingPolicyConfiguration"];
        assert_eq!(
            tracking["TargetValue"],
            json!({"Ref": "ProvisionedTargetUtilization"}),
            "{name}"
        );
        let metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
            .as_str()
            .unwrap();
        let unit = if dimension.ends_with("WriteCapacityUnits") {
            "Write"
        } else {
            "Read"
        };
        assert_eq!(
            metric,
            format!("DynamoDB{unit}CapacityUtilization"),
            "{name}"
        );
    }
}

#[test]
fn webhooks_reach_ingest_through_the_http_api_by_default_or_its_function_url_when_asked() {
    let template = expanded();
    assert_eq!(
        template["Parameters"]["IngestEndpoint"]["Default"],
        "HttpApi"
    );
    // The ingest function's URL and the permissions that let anyone call it.
    let open_to_anyone = |t: &Value| -> Vec<Value> {
        t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| match r["Type"].as_str() {
                Some("AWS::Lambda::Url") => {
                    r["Properties"]["TargetFunctionArn"]
                        == json!({"Fn::GetAtt": ["IngestFunction", "Arn"]})
                }
                Some("AWS::Lambda::Permission") => {
                    r["Properties"]["FunctionName"] == json!({"Ref": "IngestFunction"})
                        && r["Properties"]["Principal"] == "*"
                }
                _ => false,
            })
            .cloned()
            .collect()
    };
    let kinds = |resources: &[Value]| {
        let mut kinds: Vec<String> = resources
            .iter()
            .map(|r| r["Type"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    };

    let api = resolved(&template, &[("IngestByFunctionUrl", false)]);
    let public = open_to_anyone(&api);
    assert!(public.is_empty(), "{public:?}");
    assert_eq!(
        api["Outputs"]["WebhookBaseUrl"]["Value"]["Fn::Sub"],
        "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/receive/"
    );
    let alarm = &api["Resources"]["Ingest5xxAlarm"]["Properties"];
    assert_eq!(alarm["Namespace"], "AWS/ApiGateway");
    assert_eq!(alarm["MetricName"], "5xx");

    let url = resolved(&template, &[("IngestByFunctionUrl", true)]);
    let public = open_to_anyone(&url);
    assert_eq!(
        kinds(&public),
        [
            "AWS::Lambda::Permission",
            "AWS::Lambda::Permission",
            "AWS::Lambda::Url"
        ]
    );
    let function_url = &url["Resources"]["IngestFunctionUrl"]["Properties"];
    assert_eq!(function_url["AuthType"], "NONE");
    // Anyone may call the URL (senders cannot sign), and only through the URL.
    let permissions: Vec<&Value> = public
        .iter()
        .filter(|r| r["Type"] == "AWS::Lambda::Permission")
        .map(|r| &r["Properties"])
        .collect();
    assert!(
        permissions.iter().any(
            |p| p["Action"] == "lambda:InvokeFunctionUrl" && p["FunctionUrlAuthType"] == "NONE"
        )
    );
    assert!(
        permissions
            .iter()
            .any(|p| p["Action"] == "lambda:InvokeFunction" && p["InvokedViaFunctionUrl"] == true)
    );
    // The webhook URLs the CLI prints are the function URL's, with the same path.
    assert_eq!(
        url["Outputs"]["WebhookBaseUrl"]["Value"]["Fn::Sub"],
        "${IngestFunctionUrl.FunctionUrl}receive/"
    );
    // The admin API stays on the HTTP API.
    assert_eq!(
        url["Outputs"]["AdminBaseUrl"]["Value"],
        api["Outputs"]["AdminBaseUrl"]["Value"]
    );
    let alarm = &url["Resources"]["Ingest5xxAlarm"]["Properties"];
    assert_eq!(alarm["Namespace"], "AWS/Lambda");
    assert_eq!(alarm["MetricName"], "Url5xxCount");
    assert_eq!(
        alarm["Dimensions"],
        json!([{"Name": "FunctionName", "Value": {"Ref": "IngestFunction"}}])
    );
}

#[test]
fn ingest_concurrency_and_the_webhook_route_s_throttle_are_set_only_when_asked() {
    let template = expanded();
    assert_eq!(
        template["Parameters"]["IngestReservedConcurrency"]["Default"],
        0
    );
    assert_eq!(
        template["Parameters"]["ReceiveThrottleRateLimit"]["Default"],
        0
    );
    let stage = |resolved: &Value| {
        of_type(resolved, "AWS::ApiGatewayV2::Stage")
            .into_iter()
            .map(|(_, stage)| stage["Properties"].clone())
            .next()
            .expect("the HTTP API has its stage")
    };
    let defaults = resolved(
        &template,
        &[
            ("ReserveIngestConcurrency", false),
            ("ThrottleReceive", false),
        ],
    );
    assert!(
        defaults["Resources"]["IngestFunction"]["Properties"]
            .get("ReservedConcurrentExecutions")
            .is_none()
    );
    assert!(stage(&defaults).get("RouteSettings").is_none());
    let asked = resolved(
        &template,
        &[
            ("ReserveIngestConcurrency", true),
            ("ThrottleReceive", true),
        ],
    );
    assert_eq!(
        asked["Resources"]["IngestFunction"]["Properties"]["ReservedConcurrentExecutions"],
        json!({"Ref": "IngestReservedConcurrency"})
    );
    assert_eq!(
        stage(&asked)["RouteSettings"],
        json!({"POST /receive/{token}": {
            "ThrottlingRateLimit": {"Ref": "ReceiveThrottleRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ReceiveThrottleBurstLimit"},
        }})
    );
}

/// The actions function may reach the workflow targets a stack's targets file names —
/// state machines (and their executions, to stop them), event buses and queues named
/// `inlet-<env>-*`, functions named `inlet-<env>-target-*` — and nothing else; and
/// `inlet config push` warns about exactly the targets this policy leaves out.
#[test]
fn the_actions_function_reaches_the_workflow_targets_push_accepts_and_no_others() {
    use inlet_core::config::{QueueGroup, Target, Targets};
    let template = expanded();
    let policies = template["Resources"]["ActionsFunctionRole"]["Properties"]["Policies"]
        .as_array()
        .unwrap();
    let statements: Vec<&Value> = policies
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
        .collect();
    // Each action's resources, as deployed to account 123456789012 in us-east-1 for the
    // environment `prod`.
    let allowed = |action: &str| -> Vec<String> {
        statements
            .iter()
            .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
            // The stack's own resources (the failure queue) are named by reference.
            .filter_map(|s| s["Resource"]["Fn::Sub"].as_str())
            .map(|pattern| {
                pattern
                    .replace("${AWS::Partition}", "aws")
                    .replace("${AWS::Region}", "us-east-1")
                    .replace("${AWS::AccountId}", "123456789012")
                    .replace("${Environment}", "prod")
            })
            .collect()
    };
    // IAM's wildcard: `*` matches any run of characters.
    fn matches(pattern: &str, arn: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == arn,
            Some((head, rest)) => {
                arn.starts_with(head)
                    && (0..=arn.len() - head.len()).any(|i| matches(rest, &arn[head.len() + i..]))
            }
        }
    }
    let reaches = |action: &str, arn: &str| allowed(action).iter().any(|p| matches(p, arn));
    let machine = |name: &str| format!("arn:aws:states:us-east-1:123456789012:stateMachine:{name}");
    let queue = |name: &str| format!("https://sqs.us-east-1.amazonaws.com/123456789012/{name}");
    let targets = |name: &str| Targets {
        workflows: [
            ("a".to_string(), Target::StateMachine(machine(name))),
            ("b".to_string(), Target::EventBus(name.to_string())),
            (
                "c".to_string(),
                Target::Queue {
                    url: queue(name),
                    group_by: QueueGroup::Workflow,
                },
            ),
        ]
        .into(),
        ..Default::default()
    };
    for (name, reachable) in [
        ("inlet-prod-orders", true),
        ("orders", false),
        ("inlet-dev-orders", false),
    ] {
        let warned = inlet_aws::targets::unreachable_from_stack(&targets(name), "prod");
        assert_eq!(warned.is_empty(), reachable, "{name}: {warned:?}");
        assert_eq!(
            reaches("states:StartExecution", &machine(name)),
            reachable,
            "{name}"
        );
        let execution = format!("arn:aws:states:us-east-1:123456789012:execution:{name}:wr_e1_0");
        assert_eq!(
            reaches("states:StopExecution", &execution),
            reachable,
            "{name}"
        );
        let bus = format!("arn:aws:events:us-east-1:123456789012:event-bus/{name}");
        assert_eq!(reaches("events:PutEvents", &bus), reachable, "{name}");
        let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        assert_eq!(reaches("sqs:SendMessage", &queue_arn), reachable, "{name}");
    }
    assert!(reaches(
        "lambda:InvokeFunction",
        "arn:aws:lambda:us-east-1:123456789012:function:inlet-prod-target-enrich"
    ));
    assert!(!reaches(
        "lambda:InvokeFunction",
        "arn:aws:lambda:us-east-1:123456789012:function:enrich"
    ));
}
