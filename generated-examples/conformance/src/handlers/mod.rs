//! The conformance fixture's handlers: fixed sample content, and the progress, logging,
//! sampling and elicitation behaviour the official conformance suite checks
//! (docs/conformance-fixture.md lists each scenario's expectations).

use std::collections::BTreeMap;
use std::time::Duration;

use charter_runtime::rmcp::model::{ContentBlock, PromptMessage};
use serde_json::{Value, json};

use crate::generated::handler::Handler;
use crate::generated::types;
use charter_runtime::client::{Ask, AskKind};
use charter_runtime::config::Config;
use charter_runtime::dispatch::{Context, ResourceBody, ToolError};

/// A 1x1 red pixel.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV clip.
const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

pub struct Handlers {}

impl Handlers {
    pub fn new(config: &Config) -> Result<Handlers, String> {
        let _ = config;
        Ok(Handlers {})
    }
}

/// Protocol values built from their JSON form, as the specification writes them.
fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ToolError> {
    serde_json::from_value(value).map_err(|e| ToolError::internal(format!("fixture value: {e}")))
}

fn text(text: &str) -> Vec<ContentBlock> {
    vec![ContentBlock::text(text)]
}

fn image() -> Result<ContentBlock, ToolError> {
    from_json(json!({"type": "image", "data": PNG, "mimeType": "image/png"}))
}

fn decode_png() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .expect("the fixture PNG is valid base64")
}

fn pause() -> impl std::future::Future<Output = ()> {
    tokio::time::sleep(Duration::from_millis(50))
}

/// The one-field form the SEP-2322 scenarios ask with.
fn form(message: &str, field: &str, kind: &str) -> Ask {
    Ask::form(
        message,
        json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]}),
    )
}

/// Asks for the `ok` the request-state scenarios confirm with.
async fn confirm(context: &Context) -> Result<Vec<ContentBlock>, ToolError> {
    let answers = context
        .client
        .ask([("confirm", form("Please confirm", "ok", "boolean"))])
        .await?;
    let ok = answers
        .accepted("confirm")
        .and_then(|c| c.get("ok"))
        .and_then(Value::as_bool);
    Ok(text(&format!("Confirmed: {}", ok == Some(true))))
}

impl Handler for Handlers {
    async fn test_header_parameter(
        &self,
        _: &Context,
        input: types::TestHeaderParameterInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        // rmcp's HTTP service already checked the Mcp-Param-Region header against this value.
        Ok(text(&format!("Region: {}", input.region)))
    }

    async fn test_input_required_result_elicitation(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultElicitationInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let answers = context
            .client
            .ask([("user_name", form("What is your name?", "name", "string"))])
            .await?;
        let name = answers
            .accepted("user_name")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("stranger");
        Ok(text(&format!("Hello, {name}!")))
    }

    async fn test_input_required_result_sampling(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultSamplingInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let answers = context
            .client
            .ask([("capital_question", Ask::question("What is the capital of France?", 100))])
            .await?;
        Ok(text(answers.text("capital_question").unwrap_or_default()))
    }

    async fn test_input_required_result_list_roots(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultListRootsInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let answers = context.client.ask([("client_roots", Ask::Roots)]).await?;
        let roots: Vec<&str> = answers
            .get("client_roots")
            .and_then(|a| a["roots"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|root| root["uri"].as_str())
            .collect();
        Ok(text(&format!("Client roots: {}", roots.join(", "))))
    }

    async fn test_input_required_result_request_state(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultRequestStateInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        confirm(context).await
    }

    async fn test_input_required_result_tampered_state(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultTamperedStateInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        // The runtime refuses a retry whose state does not open before this runs again.
        confirm(context).await
    }

    async fn test_input_required_result_multiple_inputs(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultMultipleInputsInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let answers = context
            .client
            .ask([
                ("user_name", form("What is your name?", "name", "string")),
                ("greeting", Ask::question("Generate a greeting", 50)),
                ("client_roots", Ask::Roots),
            ])
            .await?;
        let name = answers
            .accepted("user_name")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str);
        Ok(text(&format!(
            "{} {} (roots: {})",
            answers.text("greeting").unwrap_or_default(),
            name.unwrap_or("stranger"),
            answers
                .get("client_roots")
                .map(|r| r["roots"].to_string())
                .unwrap_or_default()
        )))
    }

    async fn test_input_required_result_multi_round(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultMultiRoundInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        // Each round runs the handler again: the first ask is answered from the sealed state.
        let first = context
            .client
            .ask([("step1", form("Step 1: What is your name?", "name", "string"))])
            .await?;
        let second = context
            .client
            .ask([("step2", form("Step 2: What is your favorite color?", "color", "string"))])
            .await?;
        let field = |answers: &charter_runtime::client::Answers, key: &str, field: &str| {
            answers
                .accepted(key)
                .and_then(|c| c.get(field))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Ok(text(&format!(
            "{} likes {}",
            field(&first, "step1", "name"),
            field(&second, "step2", "color")
        )))
    }

    async fn test_input_required_result_capabilities(
        &self,
        context: &Context,
        _: types::TestInputRequiredResultCapabilitiesInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let mut asks = Vec::new();
        if context.client.declares(AskKind::Elicitation) {
            asks.push(("user_name", form("What is your name?", "name", "string")));
        }
        if context.client.declares(AskKind::Sampling) {
            asks.push(("greeting", Ask::question("Generate a greeting", 50)));
        }
        let answers = context.client.ask(asks).await?;
        Ok(text(&format!(
            "Answered: {}",
            answers.get("greeting").is_some() || answers.get("user_name").is_some()
        )))
    }

    async fn prompt_test_input_required_result_prompt(
        &self,
        context: &Context,
        _: BTreeMap<String, String>,
    ) -> Result<Vec<PromptMessage>, ToolError> {
        let answers = context
            .client
            .ask([(
                "user_context",
                form("What context should the prompt use?", "context", "string"),
            )])
            .await?;
        let given = answers
            .accepted("user_context")
            .and_then(|c| c.get("context"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(vec![from_json(json!({
            "role": "user",
            "content": {"type": "text", "text": format!("Use this context: {given}")}
        }))?])
    }

    async fn test_reconnection(
        &self,
        _: &Context,
        _: types::TestReconnectionInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Ok(text("Reconnection test completed."))
    }

    async fn touch_watched_resource(
        &self,
        context: &Context,
        _: types::TouchWatchedResourceInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let told = context.resources.updated("test://watched-resource").await;
        Ok(text(&format!(
            "told {told} subscriber(s) that test://watched-resource changed"
        )))
    }

    async fn test_simple_text(
        &self,
        _: &Context,
        _: types::TestSimpleTextInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Ok(text("This is a simple text response for testing."))
    }

    async fn test_image_content(
        &self,
        _: &Context,
        _: types::TestImageContentInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Ok(vec![image()?])
    }

    async fn test_audio_content(
        &self,
        _: &Context,
        _: types::TestAudioContentInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Ok(vec![from_json(
            json!({"type": "audio", "data": WAV, "mimeType": "audio/wav"}),
        )?])
    }

    async fn test_embedded_resource(
        &self,
        _: &Context,
        _: types::TestEmbeddedResourceInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Ok(vec![from_json(json!({
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content."
            }
        }))?])
    }

    async fn test_multiple_content_types(
        &self,
        _: &Context,
        _: types::TestMultipleContentTypesInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Ok(vec![
            ContentBlock::text("Multiple content types test:"),
            image()?,
            from_json(json!({
                "type": "resource",
                "resource": {
                    "uri": "test://mixed-content-resource",
                    "mimeType": "application/json",
                    "text": "{\"test\":\"data\",\"value\":123}"
                }
            }))?,
        ])
    }

    async fn test_tool_with_logging(
        &self,
        context: &Context,
        _: types::TestToolWithLoggingInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        #[allow(deprecated)]
        let info = charter_runtime::rmcp::model::LoggingLevel::Info;
        context.client.log(info, json!("Tool execution started")).await?;
        pause().await;
        context.client.log(info, json!("Tool processing data")).await?;
        pause().await;
        context.client.log(info, json!("Tool execution completed")).await?;
        Ok(text("Tool with logging executed successfully"))
    }

    async fn test_error_handling(
        &self,
        _: &Context,
        _: types::TestErrorHandlingInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        Err(ToolError::invalid(
            "This tool intentionally returns an error for testing",
        ))
    }

    async fn test_tool_with_progress(
        &self,
        context: &Context,
        _: types::TestToolWithProgressInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        for (step, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if step > 0 {
                pause().await;
            }
            let message = format!("Completed step {progress} of 100");
            context.client.progress(progress, Some(100.0), Some(&message)).await?;
        }
        Ok(text("Progress reported: 0, 50 and 100 of 100"))
    }

    async fn test_sampling(
        &self,
        context: &Context,
        input: types::TestSamplingInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let request = from_json(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": input.prompt}}],
            "maxTokens": 100
        }))?;
        let answer = context.client.sample(request).await?;
        let answer = serde_json::to_value(&answer).unwrap_or_default();
        let reply = answer["content"]["text"].as_str().unwrap_or_default().to_string();
        Ok(text(&format!("LLM response: {reply}")))
    }

    async fn test_elicitation(
        &self,
        context: &Context,
        input: types::TestElicitationInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"}
            },
            "required": ["username", "email"]
        });
        elicit(context, &input.message, schema, "User response").await
    }

    async fn test_elicitation_sep1034_defaults(
        &self,
        context: &Context,
        _: types::TestElicitationSep1034DefaultsInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active"
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": true}
            },
            "required": []
        });
        let message = "Please review and update the form fields with defaults";
        elicit(context, message, schema, "Elicitation completed").await
    }

    async fn test_elicitation_sep1330_enums(
        &self,
        context: &Context,
        _: types::TestElicitationSep1330EnumsInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": ["option1", "option2", "option3"]
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one titled option",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}
                    ]
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one (legacy)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select several options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select several titled options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}
                    ]}
                }
            },
            "required": []
        });
        elicit(
            context,
            "Please select options from the enum fields",
            schema,
            "Elicitation completed",
        )
        .await
    }

    async fn test_missing_capability(
        &self,
        _: &Context,
        _: types::TestMissingCapabilityInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        // The runtime already refused clients without the sampling capability (-32021).
        Ok(text("Success"))
    }

    async fn test_streaming_elicitation(
        &self,
        context: &Context,
        _: types::TestStreamingElicitationInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        context.client.progress(1.0, Some(1.0), Some("Streaming")).await?;
        Ok(text("Streaming complete"))
    }

    async fn test_logging_tool(
        &self,
        context: &Context,
        _: types::TestLoggingToolInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        #[allow(deprecated)]
        let info = charter_runtime::rmcp::model::LoggingLevel::Info;
        context.client.log(info, json!("Logging evaluated")).await?;
        Ok(text("Logging evaluated"))
    }

    async fn json_schema_2020_12_tool(
        &self,
        _: &Context,
        input: types::JsonSchema202012ToolInput,
    ) -> Result<Vec<ContentBlock>, ToolError> {
        let echoed = serde_json::to_string(&input).map_err(|e| ToolError::internal(e.to_string()))?;
        Ok(text(&format!("Received: {echoed}")))
    }

    async fn read_static_text(&self, _: &Context) -> Result<ResourceBody, ToolError> {
        Ok(ResourceBody::Text(
            "This is the content of the static text resource.".into(),
        ))
    }

    async fn read_static_binary(&self, _: &Context) -> Result<ResourceBody, ToolError> {
        Ok(ResourceBody::Blob(decode_png()))
    }

    async fn read_watched_resource(&self, _: &Context) -> Result<ResourceBody, ToolError> {
        Ok(ResourceBody::Text("Watched resource content".into()))
    }

    async fn read_template(
        &self,
        _: &Context,
        _uri: &str,
        params: types::TemplateParams,
    ) -> Result<ResourceBody, ToolError> {
        let id = params.id;
        let body = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
        Ok(ResourceBody::Text(body.to_string()))
    }

    async fn prompt_test_prompt_with_embedded_resource(
        &self,
        _: &Context,
        arguments: BTreeMap<String, String>,
    ) -> Result<Vec<PromptMessage>, ToolError> {
        let uri = arguments.get("resourceUri").cloned().unwrap_or_default();
        Ok(vec![
            from_json(json!({"role": "user", "content": {"type": "resource", "resource": {
                "uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing."
            }}}))?,
            from_json(
                json!({"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}),
            )?,
        ])
    }

    async fn prompt_test_prompt_with_image(
        &self,
        _: &Context,
        _: BTreeMap<String, String>,
    ) -> Result<Vec<PromptMessage>, ToolError> {
        Ok(vec![
            from_json(json!({"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}}))?,
            from_json(json!({"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}))?,
        ])
    }
}

/// Sends a form elicitation and reports the user's answer as text.
async fn elicit(context: &Context, message: &str, schema: Value, label: &str) -> Result<Vec<ContentBlock>, ToolError> {
    let request = from_json(json!({"mode": "form", "message": message, "requestedSchema": schema}))?;
    let answer = context.client.elicit(request).await?;
    let answer = serde_json::to_value(&answer).unwrap_or_default();
    let action = answer["action"].as_str().unwrap_or("unknown");
    Ok(text(&format!(
        "{label}: action={action}, content={}",
        answer["content"]
    )))
}
