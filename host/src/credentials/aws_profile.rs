//! AWS keys from the environment or a shared credentials file profile, as
//! the AWS CLI finds them (the subset Soar supports: static keys).

use super::{AwsKeys, Secret, SecretSource};

/// Keys from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
/// else from profile `AWS_PROFILE` (default `default`) of
/// `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`).
pub fn resolve(env: &dyn SecretSource, plugin: &str) -> Result<AwsKeys, String> {
    if let (Some(id), Some(secret)) = (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(AwsKeys {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: env.var("AWS_SESSION_TOKEN").map(Secret::new),
        });
    }
    let profile = env.var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let path = env
        .var("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            directories::BaseDirs::new().map(|d| d.home_dir().join(".aws").join("credentials"))
        });
    let missing = || {
        format!(
            "{plugin} provider: AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws/credentials"
        )
    };
    let Some(path) = path.filter(|p| p.exists()) else {
        return Err(missing());
    };
    let ini =
        ini::Ini::load_from_file(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let section = ini.section(Some(profile.as_str())).ok_or_else(|| {
        format!(
            "{plugin} provider: profile '{profile}' not found in {}",
            path.display()
        )
    })?;
    let get = |k: &str| section.get(k).map(str::to_string).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(AwsKeys {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: get("aws_session_token").map(Secret::new),
        }),
        _ => Err(format!(
            "{plugin} provider: profile '{profile}' in {} lacks aws_access_key_id or aws_secret_access_key",
            path.display()
        )),
    }
}
