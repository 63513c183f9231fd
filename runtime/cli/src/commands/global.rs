//! The options every client command shares (`--url`, `--token`, `--output`)
//! and where their values come from: flag, then environment, then the CLI
//! config file, then the built-in default.

use crate::client::{self, Client};
use crate::commands::Failure;
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use reqwest::Url;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The environment variable naming the admin API.
pub const URL_ENV: &str = "CLOUDWARE_URL";
/// The environment variable holding the token.
pub const TOKEN_ENV: &str = "CLOUDWARE_TOKEN";
/// The environment variable naming the CLI config file.
pub const CONFIG_ENV: &str = "CLOUDWARE_CONFIG";
/// The CLI config file, relative to the home directory.
pub const DEFAULT_CONFIG: &str = ".config/cloudware/cli.toml";

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and sentences for people.
    #[default]
    Text,
    /// The server's JSON, pretty-printed, on stdout.
    Json,
}

/// Options shared by every command that talks to the admin API.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Admin API options")]
pub struct ClientArgs {
    /// The admin API [env: CLOUDWARE_URL; else `url` in the CLI config file;
    /// default: http://127.0.0.1:8081].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token [env: CLOUDWARE_TOKEN; else `token` in the CLI config
    /// file].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The CLI config file (`~/.config/cloudware/cli.toml`, or `$CLOUDWARE_CONFIG`):
///
/// ```toml
/// url = "http://127.0.0.1:8081"
/// token = "cw_…"
/// ```
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CliFile {
    /// The admin API.
    pub url: Option<String>,
    /// The bearer token.
    pub token: Option<String>,
}

impl CliFile {
    /// Reads the file at `path`; a missing file is an empty one unless
    /// `required` (it was named explicitly).
    pub fn read(path: &Path, required: bool) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        Self::parse(&text).with_context(|| format!("CLI config file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        crate::settings::parse_toml(text)
    }
}

/// Where to reach the admin API and with which token.
#[derive(Debug, PartialEq, Eq)]
pub struct Connection {
    /// The admin API's base URL.
    pub url: Url,
    /// The token, if any source had one.
    pub token: Option<String>,
    /// The config file consulted (or that would have been), for hints.
    pub config_path: Option<PathBuf>,
}

impl Connection {
    /// Resolves the URL and token: flag > environment > config file >
    /// default. `env` looks up an environment variable (the process
    /// environment in the binary, a map in tests).
    pub fn resolve(
        args: &ClientArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let flag_url = args.url.clone().filter(|value| !value.trim().is_empty());
        let flag_token = args.token.clone().filter(|value| !value.trim().is_empty());
        let url = flag_url.or_else(|| env(URL_ENV));
        let token = flag_token.or_else(|| env(TOKEN_ENV));

        let (config_path, required) = match env(CONFIG_ENV) {
            Some(path) => (Some(PathBuf::from(path)), true),
            None => (
                env("HOME").map(|home| Path::new(&home).join(DEFAULT_CONFIG)),
                false,
            ),
        };
        // The file is read only when it is needed: a broken file does not
        // stand in the way of explicit flags.
        let file = match (&url, &token, &config_path) {
            (Some(_), Some(_), _) | (_, _, None) => CliFile::default(),
            (_, _, Some(path)) => CliFile::read(path, required)?,
        };

        let url = url
            .or(file.url)
            .unwrap_or_else(|| client::DEFAULT_URL.to_owned());
        let url = parse_url(url.trim())?;
        let token = token
            .or(file.token)
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty());
        Ok(Connection {
            url,
            token,
            config_path,
        })
    }

    /// The token, or the error that says how to get one.
    pub fn require_token(&self) -> Result<&str, Failure> {
        self.token
            .as_deref()
            .ok_or_else(|| Failure::unauthorized(no_token_hint(self.config_path.as_deref())))
    }

    /// A client of the resolved API with the resolved token.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = self.require_token()?;
        Client::new(self.url.clone(), token)
    }
}

/// Parses the admin API's URL; a bare `host:port` means `http://host:port`.
pub fn parse_url(text: &str) -> anyhow::Result<Url> {
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|err| anyhow::anyhow!("`{text}` is not a valid admin API URL: {err}"))?;
    anyhow::ensure!(
        url.scheme() == "http",
        "`{text}` is not a valid admin API URL: it must start with http:// (this build speaks plain HTTP)"
    );
    anyhow::ensure!(
        url.query().is_none() && url.fragment().is_none(),
        "`{text}` is not a valid admin API URL: it must not have a query or fragment"
    );
    Ok(url)
}

fn no_token_hint(config_path: Option<&Path>) -> String {
    let shown = match config_path {
        Some(path) if !path.ends_with(DEFAULT_CONFIG) => path.display().to_string(),
        _ => format!("~/{DEFAULT_CONFIG}"),
    };
    format!(
        "no token: set {TOKEN_ENV}, pass --token, or put `token = …` in {shown}; \
         `cloudware up` prints the operator token on first start and writes it to DATA_DIR/admin.token"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn args(url: Option<&str>, token: Option<&str>) -> ClientArgs {
        ClientArgs {
            url: url.map(str::to_owned),
            token: token.map(str::to_owned),
            output: Output::Text,
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cli.toml");
        std::fs::write(&file, "url = \"http://file:1\"\ntoken = \"file-token\"\n").unwrap();
        let file_env = [(CONFIG_ENV, file.to_str().unwrap())];

        // Flag beats everything.
        let env = env_of(&[
            file_env[0],
            (URL_ENV, "http://env:2"),
            (TOKEN_ENV, "env-token"),
        ]);
        let c =
            Connection::resolve(&args(Some("http://flag:3"), Some("flag-token")), &env).unwrap();
        assert_eq!(c.url.as_str(), "http://flag:3/");
        assert_eq!(c.token.as_deref(), Some("flag-token"));

        // Environment beats the file.
        let c = Connection::resolve(&args(None, None), &env).unwrap();
        assert_eq!(c.url.as_str(), "http://env:2/");
        assert_eq!(c.token.as_deref(), Some("env-token"));

        // The file beats the default; empty values count as absent.
        let env = env_of(&[file_env[0], (URL_ENV, ""), (TOKEN_ENV, " ")]);
        let c = Connection::resolve(&args(Some(""), None), &env).unwrap();
        assert_eq!(c.url.as_str(), "http://file:1/");
        assert_eq!(c.token.as_deref(), Some("file-token"));
        assert_eq!(c.config_path.as_deref(), Some(file.as_path()));

        // Mixed: URL from the flag, token from the file.
        let c = Connection::resolve(&args(Some("127.0.0.1:9"), None), &env_of(&file_env)).unwrap();
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(c.token.as_deref(), Some("file-token"));
    }

    #[test]
    fn default_url_and_missing_token() {
        let dir = tempfile::tempdir().unwrap();
        // HOME without a config file: nothing found, default URL, no token.
        let env = env_of(&[("HOME", dir.path().to_str().unwrap())]);
        let c = Connection::resolve(&args(None, None), &env).unwrap();
        assert_eq!(c.url.as_str(), "http://127.0.0.1:8081/");
        assert_eq!(c.token, None);
        assert_eq!(
            c.config_path.as_deref(),
            Some(dir.path().join(DEFAULT_CONFIG).as_path())
        );
        let err = c.require_token().unwrap_err();
        assert_eq!(err.code, crate::client::exit::UNAUTHORIZED);
        assert_eq!(
            err.to_string(),
            "no token: set CLOUDWARE_TOKEN, pass --token, or put `token = …` in \
             ~/.config/cloudware/cli.toml; `cloudware up` prints the operator token on \
             first start and writes it to DATA_DIR/admin.token"
        );

        // The default file under HOME is used.
        let path = dir.path().join(DEFAULT_CONFIG);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "token = \"  home-token\\n\"\n").unwrap();
        let c = Connection::resolve(&args(None, None), &env).unwrap();
        assert_eq!(c.token.as_deref(), Some("home-token"));
    }

    #[test]
    fn config_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        // A file named by CLOUDWARE_CONFIG must exist…
        let env = env_of(&[(CONFIG_ENV, missing.to_str().unwrap())]);
        let err = Connection::resolve(&args(None, None), &env).unwrap_err();
        assert!(format!("{err:#}").starts_with("cannot read "), "{err:#}");
        // …unless flags make it unnecessary.
        assert!(Connection::resolve(&args(Some("http://a:1"), Some("t")), &env).is_ok());

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "url = \"http://a:1\"\ntoekn = \"x\"\n").unwrap();
        let env = env_of(&[(CONFIG_ENV, bad.to_str().unwrap())]);
        let err = Connection::resolve(&args(None, None), &env).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("line 2: unknown field `toekn`"),
            "{message}"
        );
        // The hint names the file actually used.
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let env = env_of(&[(CONFIG_ENV, empty.to_str().unwrap())]);
        let c = Connection::resolve(&args(None, None), &env).unwrap();
        assert!(
            c.require_token()
                .unwrap_err()
                .to_string()
                .contains("empty.toml")
        );
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://h:1").unwrap().as_str(), "http://h:1/");
        assert_eq!(parse_url("h:1").unwrap().as_str(), "http://h:1/");
        assert_eq!(
            parse_url("http://h/admin/").unwrap().as_str(),
            "http://h/admin/"
        );
        assert!(parse_url("https://h").is_err());
        assert!(parse_url("http://h/?a=b").is_err());
        assert!(parse_url("http://").is_err());
    }
}
