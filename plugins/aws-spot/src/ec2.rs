//! The EC2 Query API: form-encoded POSTs signed by the host, XML answers.

use std::collections::BTreeMap;
use std::time::Duration;

use soar_sdk::http::Segment;
use soar_sdk::prelude::*;

/// The API version every call names.
pub const VERSION: &str = "2016-11-15";

/// Canonical's account: the owner of the official Ubuntu images.
pub const CANONICAL: &str = "099720109477";

/// Codes that mean "no spot capacity here for this type": try the next.
pub const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "UnfulfillableCapacity",
    "InsufficientCapacity",
    "Unsupported",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
];

/// Times the plugin itself retries throttling (the host already retried 503s).
const THROTTLE_RETRIES: u32 = 4;

/// Call `action` in `region` with `params`; returns the response XML.
/// `RequestLimitExceeded` (HTTP 503) is retried with exponential backoff.
pub fn call(
    ctx: &Context,
    region: &str,
    action: &str,
    params: &[(String, String)],
) -> Result<String, PluginError> {
    let endpoint = ctx.endpoint("ec2")?;
    let base = if endpoint == "https://ec2.us-east-1.amazonaws.com" {
        format!("https://ec2.{region}.amazonaws.com")
    } else {
        endpoint
    };
    let mut form = vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), VERSION.to_string()),
    ];
    form.extend_from_slice(params);
    let mut attempt = 0;
    loop {
        let resp = Request::post(format!("{base}/"))
            .credential("aws")
            .region(region)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .segments(vec![Segment::Bytes(encode_form(&form).into_bytes())])
            .send()?;
        let body = resp.text();
        if resp.is_success() {
            return Ok(body);
        }
        let err = parse_error(resp.status, &body);
        if err.code == "RequestLimitExceeded" && attempt < THROTTLE_RETRIES {
            let wait = Duration::from_millis(500 << attempt);
            soar_sdk::warn!(
                "{action} in {region}: RequestLimitExceeded ({}); retrying in {} ms",
                err.message,
                wait.as_millis()
            );
            soar_sdk::time::sleep(wait);
            attempt += 1;
            continue;
        }
        return Err(PluginError::Api(err));
    }
}

/// `application/x-www-form-urlencoded` with only `A-Za-z0-9-_.~` left as
/// they are (space as `+`). AWS hashes the bytes it receives, so any correct
/// encoding verifies there; this one is also exactly what moto re-encodes
/// the parsed form to before checking the signature (Python's `urlencode`),
/// so values with `*` (image name filters) verify against moto too.
pub fn encode_form(pairs: &[(String, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

/// Read `<Response><Errors><Error><Code/><Message/>` (or `<ErrorResponse>`).
pub fn parse_error(status: u16, xml: &str) -> soar_sdk::ApiError {
    let doc = roxmltree::Document::parse(xml).ok();
    let text = |name: &str| {
        doc.as_ref()
            .and_then(|d| d.descendants().find(|n| n.has_tag_name(name)))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    soar_sdk::ApiError {
        status,
        code: text("Code").unwrap_or_else(|| format!("http_{status}")),
        message: text("Message").unwrap_or_else(|| xml.chars().take(300).collect()),
        request_id: text("RequestID").or_else(|| text("RequestId")),
    }
}

/// One line for an error.
pub fn render(e: &PluginError) -> String {
    match e {
        PluginError::Api(a) => format!("{}: {}", a.code, a.message),
        PluginError::Transport(t) => t.message.clone(),
        PluginError::Other(m) => m.clone(),
        PluginError::InvalidConfig(d) => d
            .iter()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The API error code, if `e` is one.
pub fn code(e: &PluginError) -> Option<&str> {
    match e {
        PluginError::Api(a) => Some(a.code.as_str()),
        _ => None,
    }
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>, PluginError> {
    roxmltree::Document::parse(xml)
        .map_err(|e| PluginError::Other(format!("EC2 answered XML that does not parse: {e}")))
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn child_text(n: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(n, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn items<'a, 'i>(n: roxmltree::Node<'a, 'i>, set: &str) -> Vec<roxmltree::Node<'a, 'i>> {
    child(n, set)
        .map(|s| s.children().filter(|c| c.has_tag_name("item")).collect())
        .unwrap_or_default()
}

/// `Filter.N.Name` / `Filter.N.Value.M` parameters.
pub fn filters(list: &[(&str, Vec<String>)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, (name, values)) in list.iter().enumerate() {
        out.push((format!("Filter.{}.Name", i + 1), name.to_string()));
        for (j, v) in values.iter().enumerate() {
            out.push((format!("Filter.{}.Value.{}", i + 1, j + 1), v.clone()));
        }
    }
    out
}

/// An instance as DescribeInstances shows it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub state: String,
    pub instance_type: String,
    pub image_id: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub lifecycle: Option<String>,
    pub launch_time: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags.get(k).map(String::as_str)
    }

    pub fn attributes(&self) -> Value {
        json!({
            "region": self.region,
            "instance_type": self.instance_type,
            "state": self.state,
            "image_id": self.image_id,
            "public_ip": self.public_ip,
            "private_ip": self.private_ip,
            "market": self.lifecycle.clone().unwrap_or_else(|| "on-demand".into()),
            "slot": self.tag("soar-slot"),
            "config": self.tag("soar-config"),
            "launch_time": self.launch_time,
        })
    }
}

/// Instances in `region` matching `filter`, all pages.
pub fn describe_instances(
    ctx: &Context,
    region: &str,
    filter: &[(&str, Vec<String>)],
) -> Result<Vec<Instance>, PluginError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = filters(filter);
        if let Some(t) = &token {
            params.push(("NextToken".into(), t.clone()));
        }
        let xml = call(ctx, region, "DescribeInstances", &params)?;
        let doc = parse(&xml)?;
        let root = doc.root_element();
        for r in items(root, "reservationSet") {
            for i in items(r, "instancesSet") {
                out.push(instance_from(i, region));
            }
        }
        token = child_text(root, "nextToken");
        if token.is_none() {
            return Ok(out);
        }
    }
}

fn instance_from(i: roxmltree::Node<'_, '_>, region: &str) -> Instance {
    let tags = items(i, "tagSet")
        .into_iter()
        .filter_map(|t| {
            Some((
                child_text(t, "key")?,
                child_text(t, "value").unwrap_or_default(),
            ))
        })
        .collect();
    Instance {
        id: child_text(i, "instanceId").unwrap_or_default(),
        region: region.to_string(),
        state: child(i, "instanceState")
            .and_then(|s| child_text(s, "name"))
            .unwrap_or_default(),
        instance_type: child_text(i, "instanceType").unwrap_or_default(),
        image_id: child_text(i, "imageId").unwrap_or_default(),
        public_ip: child_text(i, "ipAddress"),
        private_ip: child_text(i, "privateIpAddress"),
        lifecycle: child_text(i, "instanceLifecycle"),
        launch_time: child_text(i, "launchTime"),
        tags,
    }
}

/// Launch one instance; returns its id.
pub fn run_instance(
    ctx: &Context,
    region: &str,
    params: Vec<(String, String)>,
) -> Result<Instance, PluginError> {
    let xml = call(ctx, region, "RunInstances", &params)?;
    let doc = parse(&xml)?;
    let root = doc.root_element();
    items(root, "instancesSet")
        .into_iter()
        .next()
        .map(|i| instance_from(i, region))
        .ok_or_else(|| PluginError::Other("RunInstances answered without an instance".into()))
}

/// Terminate; an instance that is already gone counts as done.
pub fn terminate(ctx: &Context, region: &str, id: &str) -> Result<(), PluginError> {
    match call(
        ctx,
        region,
        "TerminateInstances",
        &[("InstanceId.1".into(), id.into())],
    ) {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("InvalidInstanceID.NotFound") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The newest Canonical Ubuntu LTS server image for `arch` in `region`.
pub fn ubuntu_ami(ctx: &Context, region: &str, arch: &str) -> Result<String, PluginError> {
    let deb_arch = if arch == "arm64" { "arm64" } else { "amd64" };
    let mut params = vec![("Owner.1".to_string(), CANONICAL.to_string())];
    params.extend(filters(&[
        (
            "name",
            vec![format!("ubuntu/images/*ubuntu-*-{deb_arch}-server-*")],
        ),
        ("architecture", vec![arch.to_string()]),
        ("state", vec!["available".to_string()]),
    ]));
    let xml = call(ctx, region, "DescribeImages", &params)?;
    let doc = parse(&xml)?;
    let mut best: Option<((u32, u32), String, String, String)> = None;
    for img in items(doc.root_element(), "imagesSet") {
        let name = child_text(img, "name").unwrap_or_default();
        let Some(version) = lts_version(&name) else {
            continue;
        };
        if name.contains("-pro-") || name.contains("minimal") {
            continue;
        }
        let created = child_text(img, "creationDate").unwrap_or_default();
        let id = child_text(img, "imageId").unwrap_or_default();
        let key = (version, created, name, id);
        if best
            .as_ref()
            .is_none_or(|b| (&key.0, &key.1, &key.2) > (&b.0, &b.1, &b.2))
        {
            best = Some(key);
        }
    }
    best.map(|b| b.3).ok_or_else(|| {
        PluginError::Other(format!(
            "no Canonical Ubuntu LTS image ({deb_arch}) found in {region}; set `ami` to an image id for that region"
        ))
    })
}

/// `(24, 4)` for `...ubuntu-noble-24.04-amd64-server-...`, LTS only.
fn lts_version(name: &str) -> Option<(u32, u32)> {
    for part in name.split('-') {
        if let Some((maj, min)) = part.split_once('.')
            && maj.len() == 2
            && min == "04"
            && let Ok(m) = maj.parse::<u32>()
            && m % 2 == 0
        {
            return Some((m, 4));
        }
    }
    None
}

/// Import `public_key` as `name`, unless a key pair of that name exists.
pub fn ensure_key_pair(
    ctx: &Context,
    region: &str,
    name: &str,
    public_key: &str,
) -> Result<(), PluginError> {
    use base64::Engine as _;
    match call(
        ctx,
        region,
        "DescribeKeyPairs",
        &[("KeyName.1".into(), name.into())],
    ) {
        Ok(_) => return Ok(()),
        Err(e) if code(&e) == Some("InvalidKeyPair.NotFound") => {}
        Err(e) => return Err(e),
    }
    let material = base64::engine::general_purpose::STANDARD.encode(public_key.trim());
    match call(
        ctx,
        region,
        "ImportKeyPair",
        &[
            ("KeyName".into(), name.into()),
            ("PublicKeyMaterial".into(), material),
        ],
    ) {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("InvalidKeyPair.Duplicate") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether key pair `name` exists in `region`.
pub fn key_pair_exists(ctx: &Context, region: &str, name: &str) -> Result<bool, PluginError> {
    match call(
        ctx,
        region,
        "DescribeKeyPairs",
        &[("KeyName.1".into(), name.into())],
    ) {
        Ok(_) => Ok(true),
        Err(e) if code(&e) == Some("InvalidKeyPair.NotFound") => Ok(false),
        Err(e) => Err(e),
    }
}

/// The id of security group `name` in the default VPC, if it exists.
pub fn find_security_group(
    ctx: &Context,
    region: &str,
    name: &str,
) -> Result<Option<String>, PluginError> {
    let xml = call(
        ctx,
        region,
        "DescribeSecurityGroups",
        &filters(&[("group-name", vec![name.to_string()])]),
    )?;
    let doc = parse(&xml)?;
    Ok(items(doc.root_element(), "securityGroupInfo")
        .into_iter()
        .find_map(|g| child_text(g, "groupId")))
}

/// Find or create the group and open `ports` to `cidr`.
pub fn ensure_security_group(
    ctx: &Context,
    region: &str,
    name: &str,
    tags: &[(String, String)],
    ports: &[u16],
    cidr: &str,
) -> Result<String, PluginError> {
    let id = match find_security_group(ctx, region, name)? {
        Some(id) => id,
        None => {
            let mut params = vec![
                ("GroupName".to_string(), name.to_string()),
                (
                    "GroupDescription".to_string(),
                    format!("soar: {name} (managed by soar)"),
                ),
                (
                    "TagSpecification.1.ResourceType".to_string(),
                    "security-group".to_string(),
                ),
            ];
            for (i, (k, v)) in tags.iter().enumerate() {
                params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.clone()));
                params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone()));
            }
            match call(ctx, region, "CreateSecurityGroup", &params) {
                Ok(xml) => {
                    let doc = parse(&xml)?;
                    child_text(doc.root_element(), "groupId").ok_or_else(|| {
                        PluginError::Other("CreateSecurityGroup answered without a groupId".into())
                    })?
                }
                Err(e) if code(&e) == Some("InvalidGroup.Duplicate") => {
                    find_security_group(ctx, region, name)?.ok_or(e)?
                }
                Err(e) => return Err(e),
            }
        }
    };
    for port in ports {
        let params = vec![
            ("GroupId".to_string(), id.clone()),
            ("IpPermissions.1.IpProtocol".to_string(), "tcp".to_string()),
            ("IpPermissions.1.FromPort".to_string(), port.to_string()),
            ("IpPermissions.1.ToPort".to_string(), port.to_string()),
            (
                "IpPermissions.1.IpRanges.1.CidrIp".to_string(),
                cidr.to_string(),
            ),
        ];
        match call(ctx, region, "AuthorizeSecurityGroupIngress", &params) {
            Ok(_) => {}
            Err(e) if code(&e) == Some("InvalidPermission.Duplicate") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(id)
}

/// Delete a security group; gone already counts as done.
pub fn delete_security_group(ctx: &Context, region: &str, id: &str) -> Result<(), PluginError> {
    match call(
        ctx,
        region,
        "DeleteSecurityGroup",
        &[("GroupId".into(), id.into())],
    ) {
        Ok(_) => Ok(()),
        Err(e) if code(&e).is_some_and(|c| c.starts_with("InvalidGroup")) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete a key pair (idempotent at the API).
pub fn delete_key_pair(ctx: &Context, region: &str, name: &str) -> Result<(), PluginError> {
    match call(
        ctx,
        region,
        "DeleteKeyPair",
        &[("KeyName".into(), name.into())],
    ) {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("InvalidKeyPair.NotFound") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The lowest current Linux spot price of each type in `region`, per hour.
pub fn spot_prices(
    ctx: &Context,
    region: &str,
    types: &[String],
) -> Result<BTreeMap<String, (String, String)>, PluginError> {
    let mut params = vec![
        ("ProductDescription.1".to_string(), "Linux/UNIX".to_string()),
        ("MaxResults".to_string(), "100".to_string()),
    ];
    for (i, t) in types.iter().enumerate() {
        params.push((format!("InstanceType.{}", i + 1), t.clone()));
    }
    let now = soar_sdk::time::now_ms() / 1000;
    params.push(("StartTime".into(), iso8601(now)));
    let xml = call(ctx, region, "DescribeSpotPriceHistory", &params)?;
    let doc = parse(&xml)?;
    let mut best: BTreeMap<String, (String, String)> = BTreeMap::new();
    for item in items(doc.root_element(), "spotPriceHistorySet") {
        let (Some(t), Some(p)) = (
            child_text(item, "instanceType"),
            child_text(item, "spotPrice"),
        ) else {
            continue;
        };
        let az = child_text(item, "availabilityZone").unwrap_or_default();
        let better = best.get(&t).is_none_or(|(old, _)| {
            p.parse::<f64>().unwrap_or(f64::MAX) < old.parse::<f64>().unwrap_or(f64::MAX)
        });
        if better {
            best.insert(t, (p, az));
        }
    }
    Ok(best)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
fn iso8601(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Every region the account can use.
pub fn all_regions(ctx: &Context, probe: &str) -> Result<Vec<String>, PluginError> {
    let xml = call(ctx, probe, "DescribeRegions", &[])?;
    let doc = parse(&xml)?;
    let mut out: Vec<String> = items(doc.root_element(), "regionInfo")
        .into_iter()
        .filter_map(|r| child_text(r, "regionName"))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lts_versions() {
        assert_eq!(
            lts_version("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423"),
            Some((24, 4))
        );
        assert_eq!(
            lts_version("ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721"),
            Some((16, 4))
        );
        assert_eq!(
            lts_version("ubuntu/images/hvm-ssd/ubuntu-mantic-23.04-amd64-server-1"),
            None
        );
        assert_eq!(
            lts_version("ubuntu/images/hvm-ssd/ubuntu-x-23.10-amd64"),
            None
        );
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
