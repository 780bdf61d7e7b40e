//! Bucket CORS: the rules set by `PutBucketCors` (a typed bucket setting in the bucket record,
//! [`archipel_engine::BucketSettings`]), answered in browsers' preflight `OPTIONS` requests (unauthenticated, as S3 does) and
//! reflected in `Access-Control-*` headers on matching requests. Also the bucket's public-read
//! flag (canned ACL `public-read`), which lets anonymous clients GET, HEAD and list it.

use archipel_engine::{CorsRule, Engine};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use s3s::dto::CORSRule;

/// One CORS rule, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rule {
    pub(crate) origins: Vec<String>,
    pub(crate) methods: Vec<String>,
    pub(crate) headers: Vec<String>,
    pub(crate) expose: Vec<String>,
    pub(crate) max_age: Option<i32>,
    pub(crate) id: Option<String>,
}

impl Rule {
    pub(crate) fn from_dto(r: &CORSRule) -> Rule {
        Rule {
            origins: r.allowed_origins.clone(),
            methods: r.allowed_methods.clone(),
            headers: r.allowed_headers.clone().unwrap_or_default(),
            expose: r.expose_headers.clone().unwrap_or_default(),
            max_age: r.max_age_seconds,
            id: r.id.clone(),
        }
    }

    pub(crate) fn to_dto(&self) -> CORSRule {
        CORSRule {
            allowed_headers: (!self.headers.is_empty()).then(|| self.headers.clone()),
            allowed_methods: self.methods.clone(),
            allowed_origins: self.origins.clone(),
            expose_headers: (!self.expose.is_empty()).then(|| self.expose.clone()),
            id: self.id.clone(),
            max_age_seconds: self.max_age,
        }
    }

    fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| wildcard(o, origin))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    fn allows_headers(&self, requested: &[String]) -> bool {
        requested.iter().all(|h| {
            self.headers
                .iter()
                .any(|a| wildcard(&a.to_ascii_lowercase(), &h.to_ascii_lowercase()))
        })
    }
}

/// S3's patterns: `*` alone, or one `*` anywhere in the pattern.
fn wildcard(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

impl From<&CorsRule> for Rule {
    fn from(r: &CorsRule) -> Rule {
        Rule {
            origins: r.origins.clone(),
            methods: r.methods.clone(),
            headers: r.headers.clone(),
            expose: r.expose.clone(),
            max_age: r.max_age,
            id: r.id.clone(),
        }
    }
}

impl From<&Rule> for CorsRule {
    fn from(r: &Rule) -> CorsRule {
        CorsRule {
            origins: r.origins.clone(),
            methods: r.methods.clone(),
            headers: r.headers.clone(),
            expose: r.expose.clone(),
            max_age: r.max_age,
            id: r.id.clone(),
        }
    }
}

/// The CORS rules of `bucket`, if any.
pub(crate) async fn rules(engine: &Engine, bucket: &str) -> Option<Vec<Rule>> {
    let s = engine.bucket_settings(bucket).await.ok()?;
    s.cors.map(|rules| rules.iter().map(Rule::from).collect())
}

/// Stores (or with `None`, removes) the CORS rules of `bucket`.
pub(crate) async fn set_rules(
    engine: &Engine,
    bucket: &str,
    rules: Option<&[Rule]>,
) -> Result<(), archipel_engine::EngineError> {
    let cors = rules.map(|r| r.iter().map(CorsRule::from).collect());
    engine
        .update_bucket_settings(bucket, |s| s.cors = cors)
        .await
        .map(|_| ())
}

/// Whether `bucket` is readable anonymously.
pub(crate) async fn is_public(engine: &Engine, bucket: &str) -> bool {
    engine
        .bucket_settings(bucket)
        .await
        .is_ok_and(|s| s.public_read)
}

/// Makes `bucket` public-read, or private again.
pub(crate) async fn set_public(
    engine: &Engine,
    bucket: &str,
    public: bool,
) -> Result<(), archipel_engine::EngineError> {
    engine
        .update_bucket_settings(bucket, |s| s.public_read = public)
        .await
        .map(|_| ())
}

/// The bucket a path-style request addresses.
pub(crate) fn bucket_of(path: &str) -> Option<&str> {
    let b = path.trim_start_matches('/').split('/').next()?;
    (!b.is_empty()).then_some(b)
}

/// Answers a preflight request.
pub(crate) async fn preflight(
    engine: &Engine,
    path: &str,
    headers: &HeaderMap,
) -> Response<s3s::Body> {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    let method = headers
        .get("access-control-request-method")
        .and_then(|v| v.to_str().ok());
    let requested: Vec<String> = headers
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (Some(origin), Some(method), Some(bucket)) = (origin, method, bucket_of(path)) else {
        return forbidden("a CORS preflight needs Origin and Access-Control-Request-Method");
    };
    let Some(rules) = rules(engine, bucket).await else {
        return forbidden("CORSResponse: CORS is not enabled for this bucket.");
    };
    let Some(rule) = rules.iter().find(|r| {
        r.allows_origin(origin) && r.allows_method(method) && r.allows_headers(&requested)
    }) else {
        return forbidden("CORSResponse: This CORS request is not allowed.");
    };
    let mut resp = Response::new(s3s::Body::empty());
    let h = resp.headers_mut();
    let allow_origin = if rule.origins.iter().any(|o| o == "*") {
        "*"
    } else {
        origin
    };
    put(h, "access-control-allow-origin", allow_origin);
    put(h, "access-control-allow-methods", &rule.methods.join(", "));
    if !requested.is_empty() {
        put(h, "access-control-allow-headers", &requested.join(", "));
    }
    if !rule.expose.is_empty() {
        put(h, "access-control-expose-headers", &rule.expose.join(", "));
    }
    if let Some(age) = rule.max_age {
        put(h, "access-control-max-age", &age.to_string());
    }
    put(
        h,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
    resp
}

/// Adds `Access-Control-*` headers to the answer of a request from a browser origin.
pub(crate) async fn decorate(
    engine: &Engine,
    path: &str,
    method: &Method,
    origin: &str,
    h: &mut HeaderMap,
) {
    let Some(bucket) = bucket_of(path) else {
        return;
    };
    let Some(rules) = rules(engine, bucket).await else {
        return;
    };
    if let Some(rule) = rules
        .iter()
        .find(|r| r.allows_origin(origin) && r.allows_method(method.as_str()))
    {
        let allow = if rule.origins.iter().any(|o| o == "*") {
            "*"
        } else {
            origin
        };
        put(h, "access-control-allow-origin", allow);
        if !rule.expose.is_empty() {
            put(h, "access-control-expose-headers", &rule.expose.join(", "));
        }
        put(h, "vary", "Origin");
    }
}

fn put(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn forbidden(msg: &str) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessForbidden</Code><Message>{msg}</Message></Error>"
    );
    let mut r = Response::new(s3s::Body::from(body));
    *r.status_mut() = StatusCode::FORBIDDEN;
    put(r.headers_mut(), "content-type", "application/xml");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_methods_and_headers_match_as_s3_does() {
        let r = Rule {
            origins: vec![
                "https://*.example.org".into(),
                "http://localhost:3000".into(),
            ],
            methods: vec!["GET".into(), "PUT".into()],
            headers: vec!["x-amz-*".into(), "content-type".into()],
            expose: vec!["ETag".into()],
            max_age: Some(600),
            id: None,
        };
        assert!(r.allows_origin("https://app.example.org"));
        assert!(r.allows_origin("http://localhost:3000"));
        assert!(!r.allows_origin("https://example.org.evil.com"));
        assert!(r.allows_method("get") && !r.allows_method("DELETE"));
        assert!(r.allows_headers(&["X-Amz-Date".into(), "Content-Type".into()]));
        assert!(!r.allows_headers(&["authorization".into()]));
        assert_eq!(bucket_of("/b/k/x"), Some("b"));
        assert_eq!(bucket_of("/"), None);
    }
}
