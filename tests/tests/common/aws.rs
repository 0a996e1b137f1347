//! A stack's tables in the emulator, and its events table's stream read through the
//! real DynamoDB Streams API and turned into the event Lambda gives the actions function
//! — what the event source mapping of the template does in AWS, filter included (the
//! filter pattern is read from `template.yaml`, so a pattern that stopped matching the
//! records the commit writes would fail these tests).

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use inlet_aws::StackNames;
use inlet_aws::actions::ActionsFunction;
use inlet_aws::clients::AwsClients;
use inlet_aws::config_table::{ConfigTable, StoredToken};
use inlet_aws::directory::DynamoDirectory;
use inlet_aws::events::DynamoEventLog;
use inlet_aws::idempotency::DynamoIdempotency;
use inlet_aws::ingest::IngestFunction;
use inlet_aws::targets::AwsTargets;
use inlet_aws::vars::SsmVars;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::executor::ActionExecutor;
use inlet_core::pipeline::{Pipeline, PipelineSettings};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The tables of one stack (unique names), with the stores and the actions function on
/// them.
pub struct Stack {
    pub sdk: aws_config::SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub names: StackNames,
    pub events: DynamoEventLog,
    pub idempotency: DynamoIdempotency,
    pub directory: Arc<DynamoDirectory>,
    pub actions: Arc<ActionsFunction>,
    pub stream: StreamTap,
}

impl Stack {
    pub async fn new(prefix: &str) -> Stack {
        let unique = super::unique_name(prefix);
        Stack::open(StackNames {
            environment: "development".into(),
            idempotency_table: format!("idem-{unique}"),
            events_table: format!("events-{unique}"),
            config_table: format!("config-{unique}"),
            directory_table: format!("directory-{unique}"),
        })
        .await
    }

    /// A stack of a unique environment, with the table names a deployed stack of it has
    /// (`inlet-<env>-*`), so the `--aws-env` commands find it.
    pub async fn for_environment(prefix: &str) -> Stack {
        Stack::open(StackNames::for_environment(&super::unique_name(prefix))).await
    }

    async fn open(names: StackNames) -> Stack {
        super::require_emulator();
        let sdk = aws_config::load_from_env().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        inlet_aws::provision::create_tables(&dynamo, &names)
            .await
            .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let directory = Arc::new(DynamoDirectory {
            client: dynamo.clone(),
            table: names.directory_table.clone(),
        });
        let events = DynamoEventLog::new(dynamo.clone(), &names);
        let actions = Arc::new(ActionsFunction {
            executor: ActionExecutor {
                directory: directory.clone(),
                targets: Arc::new(AwsTargets::new(&AwsClients::new(&sdk), Default::default())),
                clock,
            },
            events: Arc::new(events.clone()),
            backoff: Duration::from_millis(10),
            // Long enough for a record to be run again once (the SDK's own three
            // attempts at a throttled request take up to ~3 s).
            store_patience: Duration::from_secs(6),
        });
        let stream = StreamTap::open(&sdk, &dynamo, &names.events_table).await;
        Stack {
            idempotency: DynamoIdempotency::new(dynamo.clone(), &names),
            sdk,
            dynamo,
            names,
            events,
            directory,
            actions,
            stream,
        }
    }

    /// Hands the stream records written since the last call to the actions function,
    /// as Lambda would, and returns the batch it was given.
    pub async fn deliver(&mut self) -> Event {
        let batch = self.stream.next_batch().await;
        let response = self.actions.handle(batch.clone()).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "the actions function reported failures: {:?}",
            response.batch_item_failures
        );
        batch
    }
}

pub const SECRET: &str = "demo-secret-change-me";

/// Sets var `name` of the stack's environment in its SSM (a SecureString, as
/// `infra/put-vars` writes them).
pub async fn put_var(stack: &Stack, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(&stack.sdk)
        .put_parameter()
        .name(format!("/inlet/{}/vars/{name}", stack.names.environment))
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// The ingest function of `stack` with `files` pushed as its config, and a token for
/// each of `sources` (the stack's environment).
pub async fn ingest_function(
    stack: &Stack,
    files: Vec<(String, String)>,
    sources: &[&str],
) -> (IngestFunction, Vec<String>) {
    put_var(stack, "TASK_APP_SECRET", SECRET).await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
    let config = ConfigTable::new(
        stack.dynamo.clone(),
        stack.names.config_table.clone(),
        engine.clone(),
        clock.clone(),
    );
    config.push_bundle(&files).await.unwrap();
    let mut tokens = Vec::new();
    for source in sources {
        let token = inlet_core::store::new_webhook_token().unwrap();
        config
            .put_token(&StoredToken {
                token: token.clone(),
                source: source.to_string(),
                environment: stack.names.environment.clone(),
                created_at_ms: clock.now_ms(),
                retires_at_ms: None,
            })
            .await
            .unwrap();
        tokens.push(token);
    }
    (ingest_of(stack, config, engine), tokens)
}

/// A new ingest function of `stack` (an execution environment with empty caches).
pub fn fresh_ingest(stack: &Stack) -> IngestFunction {
    let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
    let config = ConfigTable::new(
        stack.dynamo.clone(),
        stack.names.config_table.clone(),
        engine.clone(),
        Arc::new(SystemClock),
    );
    ingest_of(stack, config, engine)
}

fn ingest_of(stack: &Stack, config: ConfigTable, engine: Arc<ScriptEngine>) -> IngestFunction {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    IngestFunction {
        pipeline: Pipeline {
            engine,
            events: Arc::new(stack.events.clone()),
            vars: Arc::new(SsmVars::new(
                aws_sdk_ssm::Client::new(&stack.sdk),
                clock.clone(),
            )),
            clock,
            settings: PipelineSettings::default(),
            script_pool: None,
        },
        config,
        environment: stack.names.environment.clone(),
    }
}

/// The repository's config files.
pub fn example_files() -> Vec<(String, String)> {
    std::fs::read_dir(super::repo_root().join("infra/sources"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect()
}

/// An API Gateway (HTTP API v2) event POSTing `body` to `token`, from the sample in
/// `events/apigw/`.
pub fn apigw(token: &str, body: &str) -> lambda_http::Request {
    apigw_with(token, body, &[])
}

/// [`apigw`] with more headers (a signature, say).
pub fn apigw_with(token: &str, body: &str, headers: &[(String, String)]) -> lambda_http::Request {
    let text = std::fs::read_to_string(super::repo_root().join("events/apigw/task-assigned.json"))
        .unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let path = format!("/receive/{token}");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"]["token"] = json!(token);
    event["headers"]["content-length"] = json!(body.len().to_string());
    for (name, value) in headers {
        event["headers"][name] = json!(value);
    }
    event["body"] = json!(body);
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

pub async fn answer(function: &IngestFunction, token: &str, body: &str) -> (u16, Value) {
    let response = function.handle(apigw(token, body)).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

/// A source without a script whose `go` events map to `mappings` (YAML list items).
pub fn source(key: &str, mappings: &str) -> (String, String) {
    (
        format!("{key}.yaml"),
        format!(
            "key: {key}\nname: {key}\nenvironments:\n  development:\n    event_type_path: body.type\n    idempotency: {{ key_path: body.id }}\n    mappings:\n      go:\n{mappings}"
        ),
    )
}

/// Reads one table's stream from the start.
pub struct StreamTap {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    /// Each shard with the last sequence number read from it. An iterator is asked for
    /// afresh on every read (after that number), as a consumer resuming from a
    /// checkpoint does.
    shards: Vec<(String, Option<String>)>,
    filter: Value,
}

impl StreamTap {
    pub async fn open(
        sdk: &aws_config::SdkConfig,
        dynamo: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> StreamTap {
        let described = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap();
        let stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the events table has a stream")
            .to_string();
        let client = aws_sdk_dynamodbstreams::Client::new(sdk);
        let stream = client
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .unwrap();
        let shards = stream
            .stream_description()
            .unwrap()
            .shards()
            .iter()
            .map(|shard| (shard.shard_id().unwrap().to_string(), None))
            .collect();
        StreamTap {
            client,
            stream_arn,
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            shards,
            filter: template_filter(),
        }
    }

    /// Every record written since the last call, in the shape of Lambda's event.
    pub async fn all_records(&mut self) -> Vec<Value> {
        let mut records = Vec::new();
        for (shard, last) in &mut self.shards {
            let request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard.as_str());
            let request = match last.as_deref() {
                Some(sequence) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence),
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let iterator = request.send().await.unwrap();
            let page = self
                .client
                .get_records()
                .shard_iterator(iterator.shard_iterator().unwrap())
                .send()
                .await
                .unwrap();
            for record in page.records() {
                let change = record.dynamodb().unwrap();
                *last = change.sequence_number().map(str::to_string);
                records.push(json!({
                    "eventID": record.event_id(),
                    "eventName": record.event_name().map(|n| n.as_str()),
                    "eventVersion": record.event_version(),
                    "eventSource": "aws:dynamodb",
                    "awsRegion": self.region,
                    "eventSourceARN": self.stream_arn,
                    "dynamodb": {
                        "ApproximateCreationDateTime": change
                            .approximate_creation_date_time()
                            .map(|t| t.as_secs_f64()),
                        "Keys": change.keys().map(item),
                        "NewImage": change.new_image().map(item),
                        "SequenceNumber": change.sequence_number(),
                        "SizeBytes": change.size_bytes(),
                        "StreamViewType": change.stream_view_type().map(|t| t.as_str()),
                    },
                }));
            }
        }
        records
    }

    /// The records since the last call that pass the template's filter, as the event
    /// Lambda gives the actions function.
    pub async fn next_batch(&mut self) -> Event {
        let records: Vec<Value> = self
            .all_records()
            .await
            .into_iter()
            .filter(|r| matches_pattern(&self.filter, r))
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }
}

/// A DynamoDB item in the JSON form Lambda events use (`{"S": ...}`).
fn item(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute(value)))
            .collect(),
    )
}

fn attribute(value: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// Whether a stream record (in the JSON of Lambda's event) passes the template's filter.
pub fn passes_template_filter(record: &Value) -> bool {
    matches_pattern(&template_filter(), record)
}

/// The filter pattern of the actions function's event source mapping in `template.yaml`.
fn template_filter() -> Value {
    let template = std::fs::read_to_string(super::repo_root().join("template.yaml")).unwrap();
    let line = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("- Pattern: "))
        .expect("template.yaml has a filter pattern");
    serde_json::from_str(line.trim_matches('\'')).expect("the pattern is JSON")
}

/// Lambda's event filtering for the forms the template uses: an object matches when
/// each of its keys matches, a list when the value equals one of its items.
fn matches_pattern(pattern: &Value, value: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(key, sub)| matches_pattern(sub, value.get(key).unwrap_or(&Value::Null))),
        Value::Array(options) => options.contains(value),
        _ => false,
    }
}

/// [`apigw`] with the body of the sample `events/apigw/<name>` and `secret` as the shared
/// secret header.
pub fn apigw_event(name: &str, token: &str, secret: &str) -> lambda_http::Request {
    let text = std::fs::read_to_string(super::repo_root().join("events/apigw").join(name)).unwrap();
    let sample: Value = serde_json::from_str(&text).unwrap();
    let headers = [("x-webhook-secret".to_string(), secret.to_string())];
    apigw_with(token, sample["body"].as_str().unwrap(), &headers)
}

/// The events of the task-app source in `stack`'s environment, newest first.
pub async fn task_app_events(stack: &Stack) -> Vec<inlet_core::store::EventRecord> {
    use inlet_core::store::{EventLog, EventQuery};
    stack
        .events
        .list(&EventQuery {
            source: Some("task-app".into()),
            environment: Some(stack.names.environment.clone()),
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .events
}

/// Makes the emulator answer the next `count` DynamoDB requests of `operations` (all when
/// empty) on `table` as a provisioned table over its capacity does
/// (`ProvisionedThroughputExceededException`; `tests/emulator/throttle.py`); `count` 0
/// lifts it.
pub async fn throttle(table: &str, operations: &[&str], count: u32) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{endpoint}/_inlet/throttle?tables={table}&operations={}&count={count}",
            operations.join(",")
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

/// A task-app event padded to exactly `size` bytes with pseudo-random text that JSON
/// escaping grows (quotes and backslashes) and deflate cannot shrink much, so the
/// stored record (the body, and its copy in the action plan) is larger than one item.
pub fn padded_task_event(key: &str, size: usize) -> String {
    let head = format!(
        r#"{{"event_type": "task.assigned", "event_id": "{key}", "data": {{"assigned_to": "user_456", "task_id": "t1", "title": "Big"}}, "notes": ""#
    );
    let tail = "\"}";
    let alphabet: Vec<char> = (b'#'..=b'~')
        .map(char::from)
        .filter(|c| *c != '\\')
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut notes = String::new();
    while head.len() + notes.len() + tail.len() < size {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let pick = (state >> 33) as usize;
        if pick.is_multiple_of(8) && head.len() + notes.len() + tail.len() + 2 <= size {
            notes.push_str(if pick.is_multiple_of(16) {
                r#"\""#
            } else {
                r#"\\"#
            });
        } else {
            notes.push(alphabet[pick % alphabet.len()]);
        }
    }
    let body = format!("{head}{notes}{tail}");
    assert_eq!(body.len(), size);
    serde_json::from_str::<Value>(&body).expect("valid JSON");
    body
}

/// What the emulator recorded for every DynamoDB request on `stack`'s tables
/// (`tests/emulator/usage.py`: units, sizes and partition keys), oldest first.
pub async fn usage(stack: &Stack) -> Vec<Value> {
    let unique = stack
        .names
        .events_table
        .strip_prefix("events-")
        .unwrap()
        .to_string();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    reqwest::get(format!("{endpoint}/_inlet/usage?tables={unique}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
