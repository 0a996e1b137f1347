//! What an operator expects of the SAM template, checked on the CloudFormation that
//! `sam deploy` would send (the template expanded offline by SAM's own translator,
//! `tests/emulator/expand_sam.py`): every function logs JSON into a log group of its own
//! with the retention parameter and the platform log level parameter; the alarms exist
//! and notify the optional topic; failed action batches go to the failure queue the
//! alarm watches. cfn-lint and `sam validate --lint` (in `tests/run`) check the rest.

mod common;

use serde_json::{Value, json};

/// The expanded template, translated now from `template.yaml`.
fn expanded() -> Value {
    let root = common::repo_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which creates .venv with SAM's translator",
        python.display()
    );
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(python)
        .current_dir(&root)
        .args(["tests/emulator/expand_sam.py", "template.yaml"])
        // The translator wants a region; nothing here depends on which.
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "expand_sam.py failed");
    serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
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
