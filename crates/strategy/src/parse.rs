//! Reading strategy files: YAML text to a checked [`StrategyConfig`], with
//! errors that name file, line, column and key path.
//!
//! The YAML is loaded into a small positioned tree (see `yaml`) and walked by
//! hand against the schema of format version 2.0. Each mapping remembers
//! which keys were read; the others are reported as warnings
//! (`file:line:column: key.path: unknown key, ignored`), because real files
//! carry sections this program does not use (`decisions`, `deployment`, ...).

mod fuzzy_sets;
mod indicators;
mod model;
mod reader;
mod training;
mod training_data;
mod values;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::Path;

use self::fuzzy_sets::read_fuzzy_sets;
use self::indicators::read_indicators;
use self::model::read_model;
use self::reader::{Fields, Reader};
use self::training::read_training;
use self::training_data::read_training_data;
use self::values::{non_empty_text, text};
use self::yaml::{Node, Pos, excerpt};
use crate::config::StrategyConfig;
use crate::error::StrategyError;

type Result<T> = std::result::Result<T, StrategyError>;

/// A strategy read from YAML, with the keys that were ignored in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStrategy {
    /// The checked strategy; `source` is left `None`.
    pub config: StrategyConfig,
    /// One line per ignored key, in the form
    /// `file:line:column: key.path: unknown key, ignored`.
    pub warnings: Vec<String>,
}

/// Parses and checks the text of a strategy file; `file` is only used in
/// messages. Nothing is logged: the caller decides what to do with the
/// warnings (see [`StrategyConfig::from_file`], which logs them).
///
/// Names (indicators, model type, optimizer, activation, modes, membership
/// types, price sources) are read in any case. Indicator aliases:
/// `bbands`/`bollinger_bands`/`bollingerbands`, `stoch`/`stochastic`; Bollinger
/// `multiplier` is a synonym of `std_dev`. A `fuzzy_sets` key finds its
/// indicator's `feature_id` in any case. A single mode takes `symbol:` (or
/// `timeframe:`), or a one-item `list` as older files have it. Numbers must be
/// plain YAML numbers: `"14"` in quotes is a string.
///
/// Defaults, when a key is absent (or null):
/// - `description`: none; `indicators[].source`: `close`;
/// - indicator periods: RSI 14, SMA/EMA 20, ATR 14, ADX 14, Bollinger bands 20
///   with `std_dev` 2, stochastic `k_period` 14 / `d_period` 3, ROC 10, MACD
///   12/26/9. They are stored in [`IndicatorConfig`](crate::IndicatorConfig),
///   so later stages need not know them;
/// - `training_data.timeframes.base_timeframe`: the only timeframe (single
///   mode) or the shortest one listed (multi mode);
/// - `model.symbol_embedding_dim` 0; `model.architecture.activation` relu,
///   `dropout` 0; `model.features.lookback_periods` 0 (the current bar only),
///   `scale_features` true, `include_price_context` false;
/// - `model.training.optimizer` adam, `seed` 42, early stopping off; an
///   `early_stopping` mapping is on unless `enabled: false`, with `patience`
///   10 when not given;
/// - `training.method` supervised, `training.labels.source` zigzag (the only
///   ones supported).
///
/// # Errors
/// [`StrategyError::Invalid`], naming the line, column and key path of the
/// first problem found.
pub fn parse_strategy(text: &str, file: &Path) -> Result<ParsedStrategy> {
    let mut reader = Reader {
        file,
        warnings: Vec::new(),
    };
    let root = match yaml::load(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(reader.invalid(
                Pos { line: 1, column: 1 },
                "",
                "the file holds no YAML document; expected a strategy mapping",
            ));
        }
        Err(error) => return Err(reader.invalid(error.pos, &error.key_path, error.message)),
    };
    let config = read_strategy(&mut reader, &root)?;
    // Mappings report their unknown keys when they are done, inner ones
    // first; the file's order reads better.
    reader
        .warnings
        .sort_by_key(|(pos, _)| (pos.line, pos.column));
    Ok(ParsedStrategy {
        config,
        warnings: reader.warnings.into_iter().map(|(_, text)| text).collect(),
    })
}

impl StrategyConfig {
    /// Reads a strategy file and sets [`StrategyConfig::source`] to `path`.
    /// Ignored keys are logged as warnings.
    ///
    /// # Errors
    /// [`StrategyError::Io`] when the file cannot be read (or is not UTF-8),
    /// else as [`parse_strategy`].
    pub fn from_file(path: &Path) -> Result<StrategyConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| StrategyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_yaml_str(&text, path)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses strategy YAML; `file` names it in messages and `source` stays
    /// `None`. Ignored keys are logged as warnings.
    ///
    /// # Errors
    /// As [`parse_strategy`].
    pub fn from_yaml_str(text: &str, file: &Path) -> Result<StrategyConfig> {
        let parsed = parse_strategy(text, file)?;
        for warning in &parsed.warnings {
            tracing::warn!("{warning}");
        }
        Ok(parsed.config)
    }
}

fn read_strategy(reader: &mut Reader<'_>, root: &Node) -> Result<StrategyConfig> {
    let mut top = Fields::of(reader, root, "")?;

    let name = non_empty_text(reader, top.require(reader, "name")?, "name")?;
    let description = top
        .get("description")
        .map(|node| text(reader, node, "description"))
        .transpose()?;
    if let Some(node) = top.get("version") {
        check_version(reader, node)?;
    }
    let training_data_node = top.require(reader, "training_data")?;
    let training_data = read_training_data(reader, training_data_node)?;
    let indicators_node = top.require(reader, "indicators")?;
    let indicators = read_indicators(reader, indicators_node)?;
    let fuzzy_node = top.require(reader, "fuzzy_sets")?;
    let fuzzy_sets = read_fuzzy_sets(reader, fuzzy_node, &indicators)?;
    let model_node = top.require(reader, "model")?;
    let model = read_model(reader, model_node)?;
    let training_node = top.require(reader, "training")?;
    let (labels, data_split) = read_training(reader, training_node)?;

    let features: usize = fuzzy_sets.iter().map(|sets| sets.sets.len()).sum();
    if features == 0 && !model.include_price_context {
        return Err(reader.invalid(
            fuzzy_node.pos,
            "fuzzy_sets",
            "the strategy has no features: define at least one fuzzy set \
             (or set model.features.include_price_context: true)",
        ));
    }
    top.finish(reader);

    Ok(StrategyConfig {
        name,
        description,
        source: None,
        training_data,
        indicators,
        fuzzy_sets,
        model,
        labels,
        data_split,
    })
}

/// Files of versions 1.x and 2.x share this layout; version 3 does not.
fn check_version(reader: &Reader<'_>, node: &Node) -> Result<()> {
    let written = text(reader, node, "version")?;
    let major = written.trim().split('.').next().unwrap_or_default();
    if matches!(major, "1" | "2") {
        Ok(())
    } else {
        Err(reader.invalid(
            node.pos,
            "version",
            format!(
                "unsupported format version {}; expected 2.0 (or 1.x)",
                excerpt(&written)
            ),
        ))
    }
}
