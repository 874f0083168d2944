//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the API.
//!
//! The paths are written here, next to the routes in `api/mod.rs`; the
//! schemas are generated from the wire types in [`super::json`] (requests
//! as serde reads them, responses as serde writes them), so they cannot
//! drift from what the server does. The test suite runs schemathesis
//! against this document and the running server.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::json;
use crate::App;
use crate::web::guide::Guide;

/// Answers with the document, its server being the public URL.
pub fn handle(app: &App) -> Response {
    super::reply(StatusCode::OK, &document(&app.config.public_base()))
}

/// The whole document, for a server at `base`.
pub fn document(base: &str) -> Value {
    let mut out = generator(SchemaSettings::draft2020_12().for_serialize());
    let mut input = generator(SchemaSettings::draft2020_12().for_deserialize());
    let me = out.subschema_for::<json::Me>();
    let token = out.subschema_for::<json::TokenView>();
    let tokens = out.subschema_for::<Vec<json::TokenView>>();
    let with_secret = out.subschema_for::<json::WithSecret>();
    let deliveries = out.subschema_for::<Vec<json::DeliveryView>>();
    let services = out.subschema_for::<Vec<Guide>>();
    let error = out.subschema_for::<json::ErrorBody>();
    let new_token = input.subschema_for::<json::NewToken>();
    let change = input.subschema_for::<json::TokenChange>();
    let rotation = input.subschema_for::<json::Rotation>();

    let mut schemas = out.take_definitions(true);
    schemas.extend(input.take_definitions(true));
    let errors = |codes: &[u16]| error_responses(codes, &error);
    let id = json!({
        "name": "id", "in": "path", "required": true,
        "description": "The token's id.", "schema": {"type": "string"}
    });

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "webhook2fedmsg",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Manage the tokens that turn webhooks into Fedora messages. \
                Authenticate with `Authorization: Bearer` and a personal API key (made on \
                the tokens page) or an access token from the Fedora account system; or \
                with the session cookie of the web pages plus `X-CSRF-Token` on writes."
        },
        "servers": [{"url": base}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/v1/me": {"get": op("me", "Who the credentials belong to",
                ok(200, "The account.", &me), errors(&[401]), None)},
            "/api/v1/services": {"get": public(op("listServices",
                "The known services and what each needs",
                ok(200, "Every service.", &services), errors(&[]), None))},
            "/api/v1/tokens": {
                "get": with_params(op("listTokens", "The caller's tokens",
                    ok(200, "The tokens, by service then age.", &tokens),
                    errors(&[400, 401, 403]), None),
                    vec![json!({"name": "all", "in": "query", "required": false,
                        "description": "Admins only: everybody's tokens.",
                        "schema": {"type": "boolean"}})]),
                "post": op("createToken", "Make a token; its secret is shown this once",
                    ok(201, "The token and its secret.", &with_secret),
                    errors(&[400, 401, 403, 415]), Some(&new_token)),
            },
            "/api/v1/tokens/{id}": {
                "parameters": [id],
                "get": op("getToken", "One token",
                    ok(200, "The token.", &token), errors(&[401, 404]), None),
                "patch": op("updateToken", "Rename, enable or disable a token",
                    ok(200, "The token as it now is.", &token),
                    errors(&[400, 401, 403, 404, 409, 415]), Some(&change)),
                "delete": op("deleteToken", "Remove a token; its URL stops working",
                    no_content(), errors(&[401, 403, 404]), None),
            },
            "/api/v1/tokens/{id}/rotate": {
                "parameters": [id],
                "post": op("rotateToken",
                    "A new secret; the old ones keep working for the grace period",
                    ok(200, "The token and its new secret.", &with_secret),
                    errors(&[400, 401, 403, 404, 409, 415]), Some(&rotation)),
            },
            "/api/v1/tokens/{id}/deliveries": {
                "parameters": [id],
                "get": with_params(op("listDeliveries", "A token's recent deliveries",
                    ok(200, "Newest first.", &deliveries), errors(&[400, 401, 404]), None),
                    vec![json!({"name": "limit", "in": "query", "required": false,
                        "description": "How many, 1 to 100 (default 20).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100}})]),
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                    "description": "A personal API key (w2f_...) or an OIDC access token."},
                "session": {"type": "apiKey", "in": "cookie", "name": "w2f_session",
                    "description": "The web pages' session; writes also need X-CSRF-Token."},
            },
        },
    })
}

fn generator(settings: SchemaSettings) -> SchemaGenerator {
    settings
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator()
}

fn op(
    id: &str,
    summary: &str,
    success: (String, Value),
    errors: Map<String, Value>,
    body: Option<&Schema>,
) -> Value {
    let mut responses = errors;
    responses.insert(success.0, success.1);
    let mut operation = json!({"operationId": id, "summary": summary, "responses": responses});
    if let Some(schema) = body {
        operation["requestBody"] = json!({
            "required": id != "rotateToken",
            "content": {"application/json": {"schema": schema}}
        });
    }
    operation
}

fn public(mut operation: Value) -> Value {
    operation["security"] = json!([]);
    operation
}

fn with_params(mut operation: Value, parameters: Vec<Value>) -> Value {
    operation["parameters"] = Value::Array(parameters);
    operation
}

fn ok(status: u16, description: &str, schema: &Schema) -> (String, Value) {
    let content = json!({"application/json": {"schema": schema}});
    (
        status.to_string(),
        json!({"description": description, "content": content}),
    )
}

fn no_content() -> (String, Value) {
    ("204".into(), json!({"description": "Done."}))
}

fn error_responses(codes: &[u16], error: &Schema) -> Map<String, Value> {
    let mut responses = Map::new();
    // Any call may meet a database that is away.
    for code in codes.iter().copied().chain([503]) {
        let description = match code {
            400 => "The request is not valid.",
            401 => "No credentials, or they are not valid.",
            403 => "Not allowed: another site's request, no CSRF token, or not the owner.",
            404 => "No such token, or not one the caller may see.",
            409 => {
                "Not for this token's service (an instance URL or a rotation for a \
                    service that signs nothing)."
            }
            415 => "The body is not application/json.",
            _ => "The database is unavailable.",
        };
        responses.insert(
            code.to_string(),
            json!({"description": description,
                "content": {"application/json": {"schema": error}}}),
        );
    }
    responses
}

/// Whether `T`'s schema is in the document (for tests).
pub fn names_schema<T: JsonSchema>(document: &Value) -> bool {
    document["components"]["schemas"]
        .get(T::schema_name().as_ref())
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_reference_resolves() {
        let document = document("http://127.0.0.1:8080");
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = &reference[..reference.find('"').unwrap()];
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("reference outside the components: {target}"));
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "{name} is referenced but not defined"
            );
        }
        assert!(names_schema::<json::TokenView>(&document));
        assert!(names_schema::<json::NewToken>(&document));
    }
}
