//! Zero-config aws-spot projects through the built binary: `soar init
//! --provider aws-spot` writes the `.spot/` + `deployment/` skeleton (no
//! soar.toml), `soar validate` accepts it, and `soar plan` / `soar deploy`
//! run against moto. With no soar.toml there are no grants, so the plugin's
//! `ec2` endpoint is pointed at moto with the documented dev/test override
//! `SOAR_ENDPOINT_AWS_SPOT_EC2` (every test keeps traffic on 127.0.0.1).

use std::path::PathBuf;
use std::process::{Command, Output};

use soar_tests::moto::Moto;

use crate::support::aws::spot_command;

/// A temp dir holding an isolated HOME and data dir, and the project `name`.
struct Project {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Project {
    fn new(name: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        Self { tmp, dir }
    }

    /// `soar args...` in the project, with no AWS credentials and, when
    /// `ec2` is given, the endpoint override toward it.
    fn command(&self, ec2: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = spot_command(self.tmp.path(), &self.dir, ec2);
        cmd.args(args);
        cmd
    }

    fn run(&self, ec2: Option<&str>, args: &[&str]) -> Out {
        Out::new(args, self.command(ec2, args).output().unwrap())
    }

    /// As [`run`], with keys (moto's auth is off: any keys are accepted).
    fn run_with_keys(&self, ec2: &str, args: &[&str]) -> Out {
        let mut cmd = self.command(Some(ec2), args);
        cmd.env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "moto-accepts-any-key");
        Out::new(args, cmd.output().unwrap())
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap()
    }
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    what: String,
}

impl Out {
    fn new(args: &[&str], o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what: format!("soar {}", args.join(" ")),
        }
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self}");
        self
    }

    fn failed(&self) -> &Self {
        assert_eq!(self.code, Some(1), "{self}");
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

fn init(name: &str) -> Project {
    let p = Project::new(name);
    let out = p.run(None, &["init", "--provider", "aws-spot"]);
    out.ok();
    assert!(out.stdout.contains("Wrote .spot/config.yaml"), "{out}");
    p
}

#[test]
fn init_writes_the_skeleton_and_refuses_to_overwrite() {
    let p = init("My_Shop");
    assert!(
        !p.dir.join("soar.toml").exists(),
        "zero-config: no soar.toml"
    );
    let config = p.read(".spot/config.yaml");
    for key in ["regions:", "instance_types:", "count:", "ports:"] {
        assert!(
            config.lines().any(|l| l.starts_with(key)),
            "{key}\n{config}"
        );
    }
    for key in ["max_price", "ami", "public_key", "key_name", "ingress_cidr"] {
        assert!(config.contains(&format!("# {key}: ")), "{key}\n{config}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(p.dir.join("deployment/setup.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "setup.sh is executable");
    assert!(p.read("deployment/setup.sh").starts_with("#!"));
    assert!(
        p.read("deployment/services/app.service")
            .contains("ExecStart=")
    );
    assert!(p.dir.join("deployment/configs/index.html").is_file());
    assert!(p.dir.join("deployment/secrets/.gitkeep").is_file());
    assert!(
        p.read(".gitignore")
            .lines()
            .any(|l| l == "deployment/secrets/*")
    );

    // Never overwrites: an edited file survives, nothing else is written.
    std::fs::write(p.dir.join(".spot/config.yaml"), "regions: [eu-west-1]\n").unwrap();
    let out = p.run(None, &["init", "--provider", "aws-spot"]);
    out.failed();
    assert!(out.stderr.contains("already exist"), "{out}");
    assert_eq!(p.read(".spot/config.yaml"), "regions: [eu-west-1]\n");

    let out = p.run(None, &["init", "--provider", "nope"]);
    out.failed();
    assert!(
        out.stderr.contains("local") && out.stderr.contains("aws-spot"),
        "{out}"
    );
}

#[test]
fn validate_accepts_the_zero_config_project() {
    let p = init("My_Shop");
    let out = p.run(None, &["validate"]);
    out.ok();
    assert!(out.stdout.contains("zero-config aws-spot project"), "{out}");
    assert!(out.stdout.contains("app 'my-shop'"), "{out}");

    let out = p.run(None, &["validate", "--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["zero_config"], true);
    assert_eq!(v["app"], "my-shop");
    assert_eq!(v["environments"], serde_json::json!(["default"]));

    // From a subdirectory too.
    let mut cmd = p.command(None, &["validate"]);
    cmd.current_dir(p.dir.join("deployment/services"));
    let out = Out::new(&["validate"], cmd.output().unwrap());
    out.ok();

    // A bad override is reported, naming the variable.
    let mut cmd = p.command(None, &["validate"]);
    cmd.env("SOAR_ENDPOINT_AWS_SPOT_EC2", "ftp://127.0.0.1");
    let out = Out::new(&["validate"], cmd.output().unwrap());
    out.failed();
    assert!(
        out.stderr
            .contains("SOAR_ENDPOINT_AWS_SPOT_EC2 (endpoint override)"),
        "{out}"
    );
}

#[test]
fn soar_toml_wins_over_spot() {
    let p = init("both-here");
    std::fs::write(
        p.dir.join("soar.toml"),
        "[app]\nname = \"from-toml\"\n[artifact]\nkind = \"script\"\npath = \".\"\n[env.dev]\nprovider = \"local\"\n",
    )
    .unwrap();
    let out = p.run(None, &["validate", "--json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v["file"].as_str().unwrap().ends_with("soar.toml"), "{out}");
    assert_eq!(v["environments"], serde_json::json!(["dev"]));
    assert!(v.get("zero_config").is_none());
}

#[test]
fn no_project_says_so() {
    let p = Project::new("empty");
    let out = p.run(None, &["plan"]);
    out.failed();
    assert!(out.stderr.contains(".spot/config.yaml"), "{out}");
}

#[test]
fn plan_and_deploy_against_moto() {
    let moto = Moto::start().unwrap();
    let p = init("My_Shop");

    // Without credentials: a clear error, and nothing leaves 127.0.0.1.
    let out = p.run(Some(&moto.url), &["plan"]);
    out.failed();
    assert!(
        out.stderr.contains("AWS credentials missing") && out.stderr.contains("AWS_ACCESS_KEY_ID"),
        "{out}"
    );

    let out = p.run_with_keys(&moto.url, &["plan"]);
    out.ok();
    assert!(
        out.stdout
            .contains("environment \"default\" (provider aws-spot)"),
        "{out}"
    );
    assert!(out.stdout.contains("+ spot-instance spot-0"), "{out}");
    assert!(
        out.stdout
            .contains("deployment: conventions (from deployment/)"),
        "{out}"
    );
    assert!(out.stdout.contains("app.service"), "{out}");
    assert!(out.stdout.contains("Plan: 1 to add"), "{out}");
    assert!(
        out.stderr
            .contains("SOAR_ENDPOINT_AWS_SPOT_EC2=http://127.0.0.1:"),
        "the override is announced: {out}"
    );

    let out = p.run_with_keys(&moto.url, &["deploy", "-y"]);
    out.ok();
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("create spot-instance spot-0"),
        "{out}"
    );

    let out = p.run_with_keys(&moto.url, &["status"]);
    out.ok();
    assert!(out.stdout.contains("spot-instance spot-0 (i-"), "{out}");

    let out = p.run_with_keys(&moto.url, &["plan"]);
    out.ok();
    assert!(out.stdout.contains("No changes."), "{out}");

    // Destroy removes the instance and then the security group it kept.
    let out = p.run_with_keys(&moto.url, &["destroy", "--yes"]);
    out.ok();
    assert!(
        out.stderr.contains("✓ destroy spot-instance spot-0"),
        "{out}"
    );
    assert!(out.stderr.contains("✓ destroy security-group"), "{out}");
    let out = p.run_with_keys(&moto.url, &["plan"]);
    out.ok();
    assert!(out.stdout.contains("1 to add"), "{out}");
}
