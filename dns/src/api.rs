//! The control API's DNS handlers, in gvproxy's JSON (its `types.Zone`): JSON in, result
//! out; the HTTP router mounts them at `POST /services/dns/add` and `GET /services/dns/all`.
//!
//! A zone is `{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.253"}],
//! "DefaultIP":"192.168.127.254"}`; a record may carry `"Regexp":"^foo.*"` instead of (or
//! besides) `Name`. As in gvproxy (Go's decoder) field names match case-insensitively for
//! the usual spellings, and an empty or absent `DefaultIP` means none; `all` writes `""`
//! for it as Go does, and leaves `Regexp` out when there is none.

use std::net::IpAddr;

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};

use crate::zone::{AddError, Record, SharedZones, Zone};

/// The longest request body `add` reads.
pub const MAX_BODY: usize = 1 << 20;
/// The compiled size limit of one record's regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 16;

#[derive(Debug, Serialize, Deserialize)]
struct ZoneJson {
    #[serde(rename = "Name", alias = "name")]
    name: String,
    #[serde(rename = "Records", alias = "records", default)]
    records: Option<Vec<RecordJson>>,
    #[serde(
        rename = "DefaultIP",
        alias = "defaultIP",
        alias = "defaultIp",
        alias = "DefaultIp",
        default
    )]
    default_ip: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordJson {
    #[serde(rename = "Name", alias = "name", default)]
    name: Option<String>,
    #[serde(rename = "IP", alias = "ip", alias = "Ip", default)]
    ip: Option<String>,
    #[serde(
        rename = "Regexp",
        alias = "regexp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    regexp: Option<String>,
}

/// Why `add` refused a request (the router answers 400 with the message).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body longer than {MAX_BODY} bytes")]
    TooLarge,
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("zone name is empty")]
    NoZoneName,
    #[error("bad address {0:?}")]
    BadAddress(String),
    #[error("record {0} has no address")]
    NoAddress(usize),
    #[error("record {index}: bad regular expression: {error}")]
    BadRegex { index: usize, error: regex::Error },
    #[error(transparent)]
    Add(#[from] AddError),
}

fn address(text: Option<&str>) -> Result<Option<IpAddr>, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadAddress(t.to_owned())),
    }
}

fn zone_from_json(z: ZoneJson) -> Result<Zone, ApiError> {
    if z.name.trim_end_matches('.').is_empty() {
        return Err(ApiError::NoZoneName);
    }
    let mut records = Vec::new();
    for (index, r) in z.records.unwrap_or_default().into_iter().enumerate() {
        let ip = address(r.ip.as_deref())?.ok_or(ApiError::NoAddress(index))?;
        let regex = match r.regexp.as_deref() {
            None | Some("") => None,
            Some(pattern) => Some(
                RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|error| ApiError::BadRegex { index, error })?,
            ),
        };
        let name = r
            .name
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty());
        records.push(Record { name, regex, ip });
    }
    Ok(Zone::new(
        &z.name,
        records,
        address(z.default_ip.as_deref())?,
    ))
}

/// `POST /services/dns/add`: merges the zone in `body` into `zones` (see [`Zones::add`]).
///
/// [`Zones::add`]: crate::Zones::add
pub fn add(zones: &SharedZones, body: &[u8]) -> Result<(), ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge);
    }
    let zone = zone_from_json(serde_json::from_slice(body)?)?;
    zones.write().add(zone)?;
    Ok(())
}

/// `GET /services/dns/all`: every zone as a JSON array, in search order.
pub fn all(zones: &SharedZones) -> Vec<u8> {
    let json: Vec<ZoneJson> = zones
        .read()
        .zones()
        .iter()
        .map(|z| ZoneJson {
            name: z.name.clone(),
            records: Some(
                z.records
                    .iter()
                    .map(|r| RecordJson {
                        name: Some(r.name.clone().unwrap_or_default()),
                        ip: Some(r.ip.to_string()),
                        regexp: r.regex.as_ref().map(|re| re.as_str().to_owned()),
                    })
                    .collect(),
            ),
            default_ip: Some(z.default_ip.map(|ip| ip.to_string()).unwrap_or_default()),
        })
        .collect();
    serde_json::to_vec(&json).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
