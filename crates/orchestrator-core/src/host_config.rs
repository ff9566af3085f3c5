//! Whether a service runs its work in-process, on a host service or a pool
//! of them, from `USE_{PREFIX}_HOST_SERVICE`, `{PREFIX}_HOST_SERVICE_URL`
//! and `{PREFIX}_HOST_SERVICE_URLS`; or through an executor its embedder
//! chose (a cluster's scheduler).

use std::fmt;

use serde::Serialize;

/// Where a manager's adapter sends its work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AdapterMode {
    /// In this process.
    Local,
    /// On the host service at `url`.
    Host { url: String },
    /// On the least loaded of these host services.
    Hosts { urls: Vec<String> },
    /// Through an executor the embedding program chose, by its name (a
    /// cluster's scheduler: `slurm`).
    Executor { name: String },
}

impl fmt::Display for AdapterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterMode::Local => f.write_str("local"),
            AdapterMode::Host { url } => write!(f, "host service at {url}"),
            AdapterMode::Hosts { urls } => write!(f, "host services at {}", urls.join(", ")),
            AdapterMode::Executor { name } => write!(f, "executor {name}"),
        }
    }
}

/// An environment variable held a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: &'static str,
}

/// Adapter selection for one service prefix (`TRAINING`, `DATA`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostServiceConfig {
    pub prefix: &'static str,
    #[serde(flatten)]
    pub mode: AdapterMode,
}

impl HostServiceConfig {
    /// Work runs in this process.
    pub fn local(prefix: &'static str) -> Self {
        Self {
            prefix,
            mode: AdapterMode::Local,
        }
    }

    /// Work runs on the host service at `url` (`http://` or `https://`).
    pub fn host(prefix: &'static str, url: &str) -> Result<Self, ConfigError> {
        let url = validate_url(&format!("{prefix}_HOST_SERVICE_URL"), url)?;
        Ok(Self {
            prefix,
            mode: AdapterMode::Host { url },
        })
    }

    /// Reads the process environment; see [`from_lookup`](Self::from_lookup).
    pub fn from_env(prefix: &'static str, default_url: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(prefix, default_url, |name| std::env::var(name).ok())
    }

    /// Work runs through the executor `name` of the embedding program.
    pub fn executor(prefix: &'static str, name: &str) -> Self {
        Self {
            prefix,
            mode: AdapterMode::Executor {
                name: name.to_owned(),
            },
        }
    }

    /// Reads `USE_{prefix}_HOST_SERVICE` (`true/1/yes/on` or
    /// `false/0/no/off`, any case; unset or empty means false), then
    /// `{prefix}_HOST_SERVICE_URLS` (a comma-separated pool) or else
    /// `{prefix}_HOST_SERVICE_URL` (defaults to `default_url`) through `lookup`.
    pub fn from_lookup(
        prefix: &'static str,
        default_url: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let use_variable = format!("USE_{prefix}_HOST_SERVICE");
        let enabled = match lookup(&use_variable) {
            None => false,
            Some(value) => match parse_flag(&value) {
                Some(flag) => flag,
                None => {
                    return Err(ConfigError {
                        variable: use_variable,
                        value,
                        expected: "expected true/false, 1/0, yes/no or on/off",
                    });
                }
            },
        };
        if !enabled {
            return Ok(Self::local(prefix));
        }
        let urls_variable = format!("{prefix}_HOST_SERVICE_URLS");
        if let Some(list) = lookup(&urls_variable).filter(|list| !list.trim().is_empty()) {
            let urls = list
                .split(',')
                .map(|url| validate_url(&urls_variable, url))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self {
                prefix,
                mode: AdapterMode::Hosts { urls },
            });
        }
        let url_variable = format!("{prefix}_HOST_SERVICE_URL");
        let url = lookup(&url_variable)
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| default_url.to_owned());
        Ok(Self {
            prefix,
            mode: AdapterMode::Host {
                url: validate_url(&url_variable, &url)?,
            },
        })
    }

    /// The one host's URL, in `Host` mode.
    pub fn url(&self) -> Option<&str> {
        match &self.mode {
            AdapterMode::Host { url } => Some(url),
            AdapterMode::Local | AdapterMode::Hosts { .. } | AdapterMode::Executor { .. } => None,
        }
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn validate_url(variable: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let authority = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match authority {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError {
            variable: variable.to_owned(),
            value: url.to_owned(),
            expected: "expected a URL like http://127.0.0.1:50052",
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const DEFAULT: &str = "http://127.0.0.1:50052";

    fn config(vars: &[(&str, &str)]) -> Result<HostServiceConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HostServiceConfig::from_lookup("TRAINING", DEFAULT, |name| vars.get(name).cloned())
    }

    #[test]
    fn unset_or_false_means_local() {
        assert_eq!(config(&[]).unwrap().mode, AdapterMode::Local);
        for value in ["false", "0", "No", "OFF", ""] {
            let cfg = config(&[
                ("USE_TRAINING_HOST_SERVICE", value),
                ("TRAINING_HOST_SERVICE_URL", "http://gpu:1"),
            ])
            .unwrap();
            assert_eq!(cfg.mode, AdapterMode::Local, "{value:?}");
        }
    }

    #[test]
    fn true_selects_the_host_with_its_url_or_the_default() {
        for value in ["true", "1", "YES", "on", " True "] {
            let cfg = config(&[("USE_TRAINING_HOST_SERVICE", value)]).unwrap();
            assert_eq!(cfg.url(), Some(DEFAULT), "{value:?}");
        }
        let cfg = config(&[
            ("USE_TRAINING_HOST_SERVICE", "true"),
            ("TRAINING_HOST_SERVICE_URL", "https://gpu-box:6000/"),
        ])
        .unwrap();
        assert_eq!(
            cfg.mode,
            AdapterMode::Host {
                url: "https://gpu-box:6000".into()
            }
        );
    }

    #[test]
    fn a_url_list_selects_a_pool_and_a_bad_entry_is_named() {
        let cfg = config(&[
            ("USE_TRAINING_HOST_SERVICE", "1"),
            ("TRAINING_HOST_SERVICE_URL", "http://ignored:1"),
            ("TRAINING_HOST_SERVICE_URLS", "http://a:1, http://b:2/"),
        ])
        .unwrap();
        assert_eq!(
            cfg.mode,
            AdapterMode::Hosts {
                urls: vec!["http://a:1".into(), "http://b:2".into()]
            }
        );
        assert_eq!(cfg.url(), None);
        let err = config(&[
            ("USE_TRAINING_HOST_SERVICE", "1"),
            ("TRAINING_HOST_SERVICE_URLS", "http://a:1,b:2"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "TRAINING_HOST_SERVICE_URLS");
        assert_eq!(err.value, "b:2");
    }

    #[test]
    fn a_bad_flag_is_an_error_naming_the_variable() {
        let err = config(&[("USE_TRAINING_HOST_SERVICE", "maybe")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"USE_TRAINING_HOST_SERVICE="maybe" is invalid: expected true/false, 1/0, yes/no or on/off"#
        );
    }

    #[test]
    fn a_bad_url_is_an_error_naming_the_variable() {
        for url in ["gpu-box:6000", "http://", "ftp://x", "http:///path"] {
            let err = config(&[
                ("USE_TRAINING_HOST_SERVICE", "1"),
                ("TRAINING_HOST_SERVICE_URL", url),
            ])
            .unwrap_err();
            assert_eq!(err.variable, "TRAINING_HOST_SERVICE_URL", "{url:?}");
        }
        assert!(HostServiceConfig::host("DATA", "nope").is_err());
    }
}
