//! Reading strategy files: YAML text to a checked [`StrategyConfig`], with
//! errors that name file, line, column and key path.
//!
//! The YAML is loaded into a small positioned tree (see `yaml`) and walked by
//! hand against the schema of format version 2.0. Each mapping remembers
//! which keys were read; the others are reported as warnings
//! (`file:line:column: key.path: unknown key, ignored`), because real files
//! carry sections this program does not use (`decisions`, `deployment`, ...).

mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use market_data::{Symbol, Timeframe};

use crate::config::{
    Activation, DataSplit, FuzzySet, IndicatorConfig, IndicatorFuzzySets, IndicatorKind,
    LabelConfig, Membership, ModelConfig, ModelKind, Optimizer, PriceSource, StrategyConfig,
    TrainingData,
};
use crate::error::StrategyError;
use yaml::{Entry, Node, Pos, Value, cut, excerpt};

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
///   12/26/9. They are stored in [`IndicatorConfig`], so later stages need
///   not know them;
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

/// Where messages go: the file name for errors, and the warnings so far.
#[derive(Debug)]
struct Reader<'f> {
    file: &'f Path,
    /// Where each warning points, for sorting, and its text.
    warnings: Vec<(Pos, String)>,
}

impl Reader<'_> {
    fn invalid(&self, pos: Pos, key_path: &str, message: impl Into<String>) -> StrategyError {
        StrategyError::Invalid {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            key_path: shown_path(key_path),
            message: message.into(),
        }
    }

    fn warn(&mut self, pos: Pos, key_path: &str, message: &str) {
        let text = format!(
            "{}:{}:{}: {}: {message}",
            self.file.display(),
            pos.line,
            pos.column,
            shown_path(key_path)
        );
        self.warnings.push((pos, text));
    }

    /// "expected X, found Y" at `node`.
    fn expected(&self, node: &Node, path: &str, expected: &str) -> StrategyError {
        self.invalid(
            node.pos,
            path,
            format!("expected {expected}, found {}", node.describe()),
        )
    }
}

/// The top of the document has no key; messages call it `(document)`.
fn shown_path(key_path: &str) -> String {
    if key_path.is_empty() {
        "(document)".to_owned()
    } else {
        key_path.to_owned()
    }
}

/// `parent.key`; a long key is cut, as paths are only for messages.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        cut(key)
    } else {
        format!("{parent}.{}", cut(key))
    }
}

/// A mapping being read: hands out values by key and remembers which keys
/// were used, so the rest can be reported.
#[derive(Debug)]
struct Fields<'n> {
    path: String,
    pos: Pos,
    entries: &'n [Entry],
    used: Vec<bool>,
}

impl<'n> Fields<'n> {
    fn of(reader: &Reader<'_>, node: &'n Node, path: &str) -> Result<Fields<'n>> {
        let entries = mapping(reader, node, path)?;
        Ok(Fields {
            path: path.to_owned(),
            pos: node.pos,
            entries,
            used: vec![false; entries.len()],
        })
    }

    fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`, present even when null.
    fn entry(&mut self, key: &str) -> Option<&'n Node> {
        let index = self.entries.iter().position(|entry| entry.key == key)?;
        self.used[index] = true;
        Some(&self.entries[index].value)
    }

    /// The value of an optional key; absent and null are the same.
    fn get(&mut self, key: &str) -> Option<&'n Node> {
        self.entry(key)
            .filter(|node| !matches!(node.value, Value::Null))
    }

    /// The value of a required key; when it is absent the error points at
    /// this mapping.
    fn require(&mut self, reader: &Reader<'_>, key: &str) -> Result<&'n Node> {
        self.entry(key)
            .ok_or_else(|| reader.invalid(self.pos, &self.path_of(key), "required key is missing"))
    }

    /// Reports every key not read.
    fn finish(self, reader: &mut Reader<'_>) {
        self.finish_with(reader, "unknown key, ignored");
    }

    fn finish_with(self, reader: &mut Reader<'_>, message: &str) {
        for (entry, used) in self.entries.iter().zip(self.used) {
            if !used {
                reader.warn(entry.key_pos, &join(&self.path, &entry.key), message);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Typed values

fn mapping<'n>(reader: &Reader<'_>, node: &'n Node, path: &str) -> Result<&'n [Entry]> {
    match &node.value {
        Value::Map(entries) => Ok(entries),
        _ => Err(reader.expected(node, path, "a mapping")),
    }
}

fn list<'n>(reader: &Reader<'_>, node: &'n Node, path: &str) -> Result<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ => Err(reader.expected(node, path, "a list")),
    }
}

fn non_empty_list<'n>(
    reader: &Reader<'_>,
    node: &'n Node,
    path: &str,
    what: &str,
) -> Result<&'n [Node]> {
    let items = list(reader, node, path)?;
    if items.is_empty() {
        return Err(reader.expected(node, path, &format!("a non-empty list of {what}")));
    }
    Ok(items)
}

/// A string; numbers are taken as written (`symbol: 7203`).
fn text(reader: &Reader<'_>, node: &Node, path: &str) -> Result<String> {
    match &node.value {
        Value::Str(text) | Value::Int(_, text) | Value::Float(_, text) => Ok(text.clone()),
        _ => Err(reader.expected(node, path, "a string")),
    }
}

fn non_empty_text(reader: &Reader<'_>, node: &Node, path: &str) -> Result<String> {
    let value = text(reader, node, path)?;
    if value.trim().is_empty() {
        return Err(reader.expected(node, path, "a non-empty string"));
    }
    Ok(value)
}

fn boolean(reader: &Reader<'_>, node: &Node, path: &str) -> Result<bool> {
    match node.value {
        Value::Bool(value, _) => Ok(value),
        _ => Err(reader.expected(node, path, "true or false")),
    }
}

/// An integer of at least `min`.
fn integer(reader: &Reader<'_>, node: &Node, path: &str, min: u64) -> Result<u64> {
    let expected = if min == 1 {
        "a positive integer".to_owned()
    } else {
        format!("an integer >= {min}")
    };
    match node.value {
        Value::Int(value, _) => u64::try_from(value)
            .ok()
            .filter(|value| *value >= min)
            .ok_or_else(|| reader.expected(node, path, &expected)),
        _ => Err(reader.expected(node, path, &expected)),
    }
}

fn count(reader: &Reader<'_>, node: &Node, path: &str, min: u64) -> Result<usize> {
    let value = integer(reader, node, path, min)?;
    usize::try_from(value).map_err(|_| reader.invalid(node.pos, path, "integer is too large"))
}

/// A finite number (integers included) that passes `check`, described by
/// `expected` when it does not.
fn number(
    reader: &Reader<'_>,
    node: &Node,
    path: &str,
    expected: &str,
    check: impl Fn(f64) -> bool,
) -> Result<f64> {
    let value = match node.value {
        // Integers in files are small; the conversion is exact for them.
        Value::Int(value, _) => value as f64,
        Value::Float(value, _) => value,
        _ => return Err(reader.expected(node, path, expected)),
    };
    if value.is_finite() && check(value) {
        Ok(value)
    } else {
        Err(reader.expected(node, path, expected))
    }
}

/// One of a few names, in any case; `what` names the thing in the message.
fn choice<T: Copy>(
    reader: &Reader<'_>,
    node: &Node,
    path: &str,
    what: &str,
    options: &[(&str, T)],
) -> Result<T> {
    let written = text(reader, node, path)?;
    let wanted = written.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            reader.invalid(
                node.pos,
                path,
                format!(
                    "unknown {what} {}; expected one of {}",
                    excerpt(&written),
                    names.join(", ")
                ),
            )
        })
}

/// A value parsed by its type's `FromStr`, whose error becomes the message.
fn parsed<T>(reader: &Reader<'_>, node: &Node, path: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    let written = text(reader, node, path)?;
    written.parse().map_err(|error: T::Err| {
        // Those errors quote the whole value (`{:?}`); this one quotes an excerpt.
        let message = error
            .to_string()
            .replace(&format!("{written:?}"), &excerpt(&written));
        reader.invalid(node.pos, path, message)
    })
}

/// Shows a number briefly: `0.7`, `1.1`, `35`.
fn show(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn show_all(values: &[f64]) -> String {
    let shown: Vec<String> = values.iter().map(|value| show(*value)).collect();
    format!("[{}]", shown.join(", "))
}

// ---------------------------------------------------------------------------
// The document

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

// ---------------------------------------------------------------------------
// training_data

fn read_training_data(reader: &mut Reader<'_>, node: &Node) -> Result<TrainingData> {
    let mut fields = Fields::of(reader, node, "training_data")?;

    let symbols_path = fields.path_of("symbols");
    let symbols_node = fields.require(reader, "symbols")?;
    let (symbols, symbol_fields) =
        read_selection::<Symbol>(reader, symbols_node, &symbols_path, &SYMBOLS)?;
    symbol_fields.finish(reader);

    let timeframes_path = fields.path_of("timeframes");
    let timeframes_node = fields.require(reader, "timeframes")?;
    let (timeframes, mut timeframe_fields) =
        read_selection::<Timeframe>(reader, timeframes_node, &timeframes_path, &TIMEFRAMES)?;
    let base_timeframe = match timeframe_fields.get("base_timeframe") {
        Some(node) => {
            let path = timeframe_fields.path_of("base_timeframe");
            let base: Timeframe = parsed(reader, node, &path)?;
            if !timeframes.contains(&base) {
                let listed: Vec<&str> = timeframes.iter().map(|tf| tf.as_str()).collect();
                return Err(reader.invalid(
                    node.pos,
                    &path,
                    format!(
                        "base_timeframe {base} is not among the timeframes ({})",
                        listed.join(", ")
                    ),
                ));
            }
            base
        }
        None => match timeframes.iter().min() {
            Some(lowest) => *lowest,
            None => return Err(reader.expected(timeframes_node, &timeframes_path, "timeframes")),
        },
    };
    timeframe_fields.finish(reader);

    if let Some(node) = fields.get("history_required") {
        count(reader, node, &fields.path_of("history_required"), 0)?;
    }
    fields.finish(reader);

    Ok(TrainingData {
        symbols,
        timeframes,
        base_timeframe,
    })
}

/// How `symbols:` or `timeframes:` is spelt.
#[derive(Debug)]
struct Selection {
    /// `symbol` or `timeframe`: the key of the single value.
    one: &'static str,
    single_modes: &'static [&'static str],
    multi_modes: &'static [&'static str],
}

const SYMBOLS: Selection = Selection {
    one: "symbol",
    single_modes: &["single", "single_symbol"],
    multi_modes: &["multi_symbol", "multi"],
};

const TIMEFRAMES: Selection = Selection {
    one: "timeframe",
    single_modes: &["single", "single_timeframe"],
    multi_modes: &["multi_timeframe", "multi"],
};

/// Reads `{mode: single, symbol: X}` or `{mode: multi_..., list: [...]}`.
/// A single mode also takes a one-item `list`, as older files have it.
/// Returns the mapping's fields so the caller can read more keys of it.
fn read_selection<'n, T>(
    reader: &Reader<'_>,
    node: &'n Node,
    path: &str,
    spelling: &Selection,
) -> Result<(Vec<T>, Fields<'n>)>
where
    T: FromStr + PartialEq + Display,
    T::Err: Display,
{
    let mut fields = Fields::of(reader, node, path)?;
    let one = spelling.one;
    let mode_path = fields.path_of("mode");
    let mode_node = fields.require(reader, "mode")?;
    let modes: Vec<(&str, bool)> = spelling
        .single_modes
        .iter()
        .map(|mode| (*mode, false))
        .chain(spelling.multi_modes.iter().map(|mode| (*mode, true)))
        .collect();
    let multi = choice(reader, mode_node, &mode_path, "mode", &modes)?;
    let one_path = fields.path_of(one);
    let list_path = fields.path_of("list");
    let one_node = fields.get(one);
    let list_node = fields.get("list");
    let multi_mode = spelling.multi_modes[0];

    let values = if multi {
        if let Some(node) = one_node {
            return Err(reader.invalid(
                node.pos,
                &one_path,
                format!("mode {multi_mode} takes a list (list: [...]), not {one}"),
            ));
        }
        let node = fields.require(reader, "list")?;
        let items = non_empty_list(reader, node, &list_path, &format!("{one}s"))?;
        let mut values: Vec<T> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{list_path}[{index}]");
            let value: T = parsed(reader, item, &item_path)?;
            if values.contains(&value) {
                return Err(reader.invalid(
                    item.pos,
                    &item_path,
                    format!("duplicate {one} {value}"),
                ));
            }
            values.push(value);
        }
        values
    } else {
        match (one_node, list_node) {
            (Some(node), None) => vec![parsed(reader, node, &one_path)?],
            (None, Some(node)) => {
                let items = list(reader, node, &list_path)?;
                match items {
                    [item] => vec![parsed(reader, item, &format!("{list_path}[0]"))?],
                    _ => {
                        return Err(reader.invalid(
                            node.pos,
                            &list_path,
                            format!(
                                "mode single takes one {one} ({one}: ...); \
                                 use mode {multi_mode} for a list"
                            ),
                        ));
                    }
                }
            }
            (Some(_), Some(node)) => {
                return Err(reader.invalid(
                    node.pos,
                    &list_path,
                    format!("give either {one} or list, not both"),
                ));
            }
            (None, None) => {
                return Err(reader.invalid(fields.pos, &one_path, "required key is missing"));
            }
        }
    };
    Ok((values, fields))
}

// ---------------------------------------------------------------------------
// indicators

/// Accepted indicator names (lower-cased) and what they mean.
const INDICATOR_NAMES: &[(&str, IndicatorKind)] = &[
    ("rsi", IndicatorKind::Rsi),
    ("sma", IndicatorKind::Sma),
    ("ema", IndicatorKind::Ema),
    ("macd", IndicatorKind::Macd),
    ("atr", IndicatorKind::Atr),
    ("adx", IndicatorKind::Adx),
    ("bbands", IndicatorKind::BollingerBands),
    ("bollinger_bands", IndicatorKind::BollingerBands),
    ("bollingerbands", IndicatorKind::BollingerBands),
    ("stoch", IndicatorKind::Stochastic),
    ("stochastic", IndicatorKind::Stochastic),
    ("roc", IndicatorKind::Roc),
];

const PRICE_SOURCES: &[(&str, PriceSource)] = &[
    ("open", PriceSource::Open),
    ("high", PriceSource::High),
    ("low", PriceSource::Low),
    ("close", PriceSource::Close),
];

fn read_indicators(reader: &mut Reader<'_>, node: &Node) -> Result<Vec<IndicatorConfig>> {
    let items = non_empty_list(reader, node, "indicators", "indicators")?;
    let mut indicators: Vec<IndicatorConfig> = Vec::with_capacity(items.len());
    // Lower-cased feature_id -> index of the indicator that has it.
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("indicators[{index}]");
        let (indicator, id_at) = read_indicator(reader, item, &path)?;
        let folded = indicator.feature_id.to_ascii_lowercase();
        if let Some(first) = ids.get(&folded) {
            let (pos, id_path, hint) = id_at;
            return Err(reader.invalid(
                pos,
                &id_path,
                format!(
                    "duplicate feature_id {} (also that of indicators[{first}]){hint}",
                    excerpt(&indicator.feature_id)
                ),
            ));
        }
        ids.insert(folded, index);
        indicators.push(indicator);
    }
    Ok(indicators)
}

/// Where an indicator's feature_id comes from, for duplicate errors: the
/// position and path, and a hint when it was derived from the name.
type IdSource = (Pos, String, &'static str);

fn read_indicator(
    reader: &mut Reader<'_>,
    node: &Node,
    path: &str,
) -> Result<(IndicatorConfig, IdSource)> {
    let mut fields = Fields::of(reader, node, path)?;
    let name_path = fields.path_of("name");
    let name_node = fields.require(reader, "name")?;
    let name = text(reader, name_node, &name_path)?;
    let lowered = name.trim().to_ascii_lowercase();
    let Some(kind) = INDICATOR_NAMES
        .iter()
        .find(|(known, _)| *known == lowered)
        .map(|(_, kind)| *kind)
    else {
        let known: Vec<&str> = INDICATOR_NAMES.iter().map(|(known, _)| *known).collect();
        return Err(reader.invalid(
            name_node.pos,
            &name_path,
            format!(
                "unknown indicator {}; known indicators: {}",
                excerpt(&name),
                known.join(", ")
            ),
        ));
    };

    let (feature_id, id_source) = match fields.get("feature_id") {
        Some(id_node) => {
            let id_path = fields.path_of("feature_id");
            let id = non_empty_text(reader, id_node, &id_path)?;
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if !id.chars().all(allowed) {
                return Err(reader.invalid(
                    id_node.pos,
                    &id_path,
                    format!(
                        "invalid feature_id {}: use only letters, digits, '_' and '-'",
                        excerpt(&id)
                    ),
                ));
            }
            (id, (id_node.pos, id_path, ""))
        }
        None => (
            lowered,
            (
                name_node.pos,
                name_path,
                "; give the indicator its own feature_id",
            ),
        ),
    };

    let source = match fields.get("source") {
        Some(node) => choice(
            reader,
            node,
            &fields.path_of("source"),
            "price source",
            PRICE_SOURCES,
        )?,
        None => PriceSource::default(),
    };

    let mut indicator = IndicatorConfig {
        kind,
        feature_id,
        period: None,
        fast_period: None,
        slow_period: None,
        signal_period: None,
        k_period: None,
        d_period: None,
        std_dev: None,
        source,
    };
    match kind {
        IndicatorKind::Rsi | IndicatorKind::Atr | IndicatorKind::Adx => {
            indicator.period = Some(period(reader, &mut fields, "period", 14)?);
        }
        IndicatorKind::Sma | IndicatorKind::Ema => {
            indicator.period = Some(period(reader, &mut fields, "period", 20)?);
        }
        IndicatorKind::Roc => {
            indicator.period = Some(period(reader, &mut fields, "period", 10)?);
        }
        IndicatorKind::BollingerBands => {
            indicator.period = Some(period(reader, &mut fields, "period", 20)?);
            indicator.std_dev = Some(band_width(reader, &mut fields)?);
        }
        IndicatorKind::Stochastic => {
            indicator.k_period = Some(period(reader, &mut fields, "k_period", 14)?);
            indicator.d_period = Some(period(reader, &mut fields, "d_period", 3)?);
        }
        IndicatorKind::Macd => {
            let fast = period(reader, &mut fields, "fast_period", 12)?;
            let slow = period(reader, &mut fields, "slow_period", 26)?;
            let signal = period(reader, &mut fields, "signal_period", 9)?;
            if fast >= slow {
                let pos = fields
                    .get("fast_period")
                    .map_or(fields.pos, |node| node.pos);
                return Err(reader.invalid(
                    pos,
                    &fields.path_of("fast_period"),
                    format!("fast_period ({fast}) must be less than slow_period ({slow})"),
                ));
            }
            indicator.fast_period = Some(fast);
            indicator.slow_period = Some(slow);
            indicator.signal_period = Some(signal);
        }
    }
    let message = format!("not a parameter of {}, ignored", kind_name(kind));
    fields.finish_with(reader, &message);
    Ok((indicator, id_source))
}

fn kind_name(kind: IndicatorKind) -> &'static str {
    match kind {
        IndicatorKind::Rsi => "rsi",
        IndicatorKind::Sma => "sma",
        IndicatorKind::Ema => "ema",
        IndicatorKind::Macd => "macd",
        IndicatorKind::Atr => "atr",
        IndicatorKind::Adx => "adx",
        IndicatorKind::BollingerBands => "bbands",
        IndicatorKind::Stochastic => "stoch",
        IndicatorKind::Roc => "roc",
    }
}

fn period(
    reader: &Reader<'_>,
    fields: &mut Fields<'_>,
    key: &str,
    default: usize,
) -> Result<usize> {
    match fields.get(key) {
        Some(node) => count(reader, node, &fields.path_of(key), 1),
        None => Ok(default),
    }
}

/// Bollinger bands width: `std_dev` or its synonym `multiplier`, default 2.
fn band_width(reader: &Reader<'_>, fields: &mut Fields<'_>) -> Result<f64> {
    let std_dev = fields.get("std_dev");
    let multiplier = fields.get("multiplier");
    let (key, node) = match (std_dev, multiplier) {
        (Some(_), Some(node)) => {
            return Err(reader.invalid(
                node.pos,
                &fields.path_of("multiplier"),
                "give either std_dev or multiplier, not both",
            ));
        }
        (Some(node), None) => ("std_dev", node),
        (None, Some(node)) => ("multiplier", node),
        (None, None) => return Ok(2.0),
    };
    number(
        reader,
        node,
        &fields.path_of(key),
        "a number > 0",
        |value| value > 0.0,
    )
}

// ---------------------------------------------------------------------------
// fuzzy_sets

const MEMBERSHIP_TYPES: &[(&str, MembershipType)] = &[
    ("triangular", MembershipType::Triangular),
    ("trapezoidal", MembershipType::Trapezoidal),
    ("gaussian", MembershipType::Gaussian),
];

#[derive(Debug, Clone, Copy)]
enum MembershipType {
    Triangular,
    Trapezoidal,
    Gaussian,
}

/// Reads `fuzzy_sets`, keyed by feature_id (in any case). The result follows
/// the order of the indicators, so features follow it too.
fn read_fuzzy_sets(
    reader: &mut Reader<'_>,
    node: &Node,
    indicators: &[IndicatorConfig],
) -> Result<Vec<IndicatorFuzzySets>> {
    let path = "fuzzy_sets";
    if matches!(node.value, Value::Null) {
        return Ok(Vec::new());
    }
    let entries = mapping(reader, node, path)?;
    // Per indicator index: its sets and the line of its key.
    let mut found: Vec<Option<(Vec<FuzzySet>, usize)>> = vec![None; indicators.len()];
    for entry in entries {
        let entry_path = join(path, &entry.key);
        let wanted = entry.key.to_ascii_lowercase();
        let Some(index) = indicators
            .iter()
            .position(|indicator| indicator.feature_id.to_ascii_lowercase() == wanted)
        else {
            let known: Vec<&str> = indicators
                .iter()
                .map(|indicator| indicator.feature_id.as_str())
                .collect();
            return Err(reader.invalid(
                entry.key_pos,
                &entry_path,
                format!(
                    "no indicator has feature_id {}; known feature_ids: {}",
                    excerpt(&entry.key),
                    known.join(", ")
                ),
            ));
        };
        if let Some((_, line)) = &found[index] {
            return Err(reader.invalid(
                entry.key_pos,
                &entry_path,
                format!(
                    "fuzzy sets for feature_id {} were already given at line {line}",
                    excerpt(&indicators[index].feature_id)
                ),
            ));
        }
        let mut sets = Vec::new();
        if !matches!(entry.value.value, Value::Null) {
            for set in mapping(reader, &entry.value, &entry_path)? {
                let set_path = join(&entry_path, &set.key);
                let membership = read_membership(reader, &set.value, &set_path)?;
                sets.push(FuzzySet {
                    name: set.key.clone(),
                    membership,
                });
            }
        }
        found[index] = Some((sets, entry.key_pos.line));
    }
    Ok(indicators
        .iter()
        .zip(found)
        .filter_map(|(indicator, sets)| {
            sets.map(|(sets, _)| IndicatorFuzzySets {
                feature_id: indicator.feature_id.clone(),
                sets,
            })
        })
        .collect())
}

/// `{type: triangular, parameters: [a, b, c]}` or the shorthand `[a, b, c]`
/// (three numbers: triangular, four: trapezoidal).
fn read_membership(reader: &mut Reader<'_>, node: &Node, path: &str) -> Result<Membership> {
    match &node.value {
        Value::Seq(items) => {
            let values = numbers(reader, items, path)?;
            let kind = match values.len() {
                3 => MembershipType::Triangular,
                4 => MembershipType::Trapezoidal,
                found => {
                    return Err(reader.invalid(
                        node.pos,
                        path,
                        format!(
                            "expected 3 numbers (triangular) or 4 (trapezoidal), found {found}"
                        ),
                    ));
                }
            };
            membership(reader, kind, &values, node, path)
        }
        Value::Map(_) => {
            let mut fields = Fields::of(reader, node, path)?;
            let type_path = fields.path_of("type");
            let type_node = fields.require(reader, "type")?;
            let kind = choice(
                reader,
                type_node,
                &type_path,
                "membership type",
                MEMBERSHIP_TYPES,
            )?;
            let parameters_path = fields.path_of("parameters");
            let parameters = fields.require(reader, "parameters")?;
            let items = list(reader, parameters, &parameters_path)?;
            let values = numbers(reader, items, &parameters_path)?;
            let (wanted, form) = match kind {
                MembershipType::Triangular => (3, "triangular takes 3 parameters [a, b, c]"),
                MembershipType::Trapezoidal => (4, "trapezoidal takes 4 parameters [a, b, c, d]"),
                MembershipType::Gaussian => (2, "gaussian takes 2 parameters [mean, sigma]"),
            };
            if values.len() != wanted {
                return Err(reader.invalid(
                    parameters.pos,
                    &parameters_path,
                    format!("{form}, found {}", values.len()),
                ));
            }
            let membership = membership(reader, kind, &values, parameters, &parameters_path)?;
            fields.finish(reader);
            Ok(membership)
        }
        _ => Err(reader.expected(
            node,
            path,
            "a mapping {type, parameters} or a list of 3 or 4 numbers",
        )),
    }
}

fn numbers(reader: &Reader<'_>, items: &[Node], path: &str) -> Result<Vec<f64>> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            number(
                reader,
                item,
                &format!("{path}[{index}]"),
                "a number",
                |_| true,
            )
        })
        .collect()
}

/// Builds a membership from the right number of values, checking their order.
fn membership(
    reader: &Reader<'_>,
    kind: MembershipType,
    values: &[f64],
    node: &Node,
    path: &str,
) -> Result<Membership> {
    let ascending = values.windows(2).all(|pair| pair[0] <= pair[1]);
    let wide = values.first() < values.last();
    match (kind, values) {
        (MembershipType::Triangular, &[a, b, c]) => {
            if !(ascending && wide) {
                return Err(reader.invalid(
                    node.pos,
                    path,
                    format!(
                        "triangular parameters must be ascending (a <= b <= c, a < c), found {}",
                        show_all(values)
                    ),
                ));
            }
            Ok(Membership::Triangular { a, b, c })
        }
        (MembershipType::Trapezoidal, &[a, b, c, d]) => {
            if !(ascending && wide) {
                return Err(reader.invalid(
                    node.pos,
                    path,
                    format!(
                        "trapezoidal parameters must be ascending (a <= b <= c <= d, a < d), \
                         found {}",
                        show_all(values)
                    ),
                ));
            }
            Ok(Membership::Trapezoidal { a, b, c, d })
        }
        (MembershipType::Gaussian, &[mean, sigma]) => {
            if sigma <= 0.0 {
                return Err(reader.invalid(
                    node.pos,
                    path,
                    format!("gaussian sigma must be > 0, found {}", show(sigma)),
                ));
            }
            Ok(Membership::Gaussian { mean, sigma })
        }
        _ => Err(reader.invalid(
            node.pos,
            path,
            format!("wrong number of parameters: {}", values.len()),
        )),
    }
}

// ---------------------------------------------------------------------------
// model

const MODEL_KINDS: &[(&str, ModelKind)] = &[
    ("mlp", ModelKind::Mlp),
    ("cnn", ModelKind::Cnn),
    ("lstm", ModelKind::Lstm),
];

const ACTIVATIONS: &[(&str, Activation)] = &[
    ("relu", Activation::Relu),
    ("tanh", Activation::Tanh),
    ("sigmoid", Activation::Sigmoid),
    ("leaky_relu", Activation::LeakyRelu),
    ("leakyrelu", Activation::LeakyRelu),
    ("gelu", Activation::Gelu),
];

const OPTIMIZERS: &[(&str, Optimizer)] = &[("adam", Optimizer::Adam), ("sgd", Optimizer::Sgd)];

/// Patience when `early_stopping` is on but gives none.
const DEFAULT_PATIENCE: usize = 10;

fn read_model(reader: &mut Reader<'_>, node: &Node) -> Result<ModelConfig> {
    let mut model = Fields::of(reader, node, "model")?;
    let kind_node = model.require(reader, "type")?;
    let kind = choice(
        reader,
        kind_node,
        &model.path_of("type"),
        "model type",
        MODEL_KINDS,
    )?;
    let symbol_embedding_dim = match model.get("symbol_embedding_dim") {
        Some(node) => count(reader, node, &model.path_of("symbol_embedding_dim"), 0)?,
        None => 0,
    };

    let architecture_path = model.path_of("architecture");
    let mut architecture = Fields::of(
        reader,
        model.require(reader, "architecture")?,
        &architecture_path,
    )?;
    let layers_path = architecture.path_of("hidden_layers");
    let layers_node = architecture.require(reader, "hidden_layers")?;
    let hidden_layers = non_empty_list(reader, layers_node, &layers_path, "layer sizes")?
        .iter()
        .enumerate()
        .map(|(index, item)| count(reader, item, &format!("{layers_path}[{index}]"), 1))
        .collect::<Result<Vec<usize>>>()?;
    let activation = match architecture.get("activation") {
        Some(node) => choice(
            reader,
            node,
            &architecture.path_of("activation"),
            "activation",
            ACTIVATIONS,
        )?,
        None => Activation::Relu,
    };
    if let Some(node) = architecture.get("output_activation") {
        // The models always end in softmax over the three labels.
        choice(
            reader,
            node,
            &architecture.path_of("output_activation"),
            "output activation",
            &[("softmax", ())],
        )?;
    }
    let dropout = match architecture.get("dropout") {
        Some(node) => number(
            reader,
            node,
            &architecture.path_of("dropout"),
            "a number in [0, 1)",
            |value| (0.0..1.0).contains(&value),
        )?,
        None => 0.0,
    };
    architecture.finish(reader);

    let mut lookback_periods = 0;
    let mut scale_features = true;
    let mut include_price_context = false;
    if let Some(node) = model.get("features") {
        let mut features = Fields::of(reader, node, &model.path_of("features"))?;
        if let Some(node) = features.get("lookback_periods") {
            lookback_periods = count(reader, node, &features.path_of("lookback_periods"), 0)?;
        }
        if let Some(node) = features.get("scale_features") {
            scale_features = boolean(reader, node, &features.path_of("scale_features"))?;
        }
        if let Some(node) = features.get("include_price_context") {
            include_price_context =
                boolean(reader, node, &features.path_of("include_price_context"))?;
        }
        features.finish(reader);
    }

    let training_path = model.path_of("training");
    let mut training = Fields::of(reader, model.require(reader, "training")?, &training_path)?;
    let learning_rate = number(
        reader,
        training.require(reader, "learning_rate")?,
        &training.path_of("learning_rate"),
        "a number > 0",
        |value| value > 0.0,
    )?;
    let batch_size = count(
        reader,
        training.require(reader, "batch_size")?,
        &training.path_of("batch_size"),
        1,
    )?;
    let epochs = count(
        reader,
        training.require(reader, "epochs")?,
        &training.path_of("epochs"),
        1,
    )?;
    let optimizer = match training.get("optimizer") {
        Some(node) => choice(
            reader,
            node,
            &training.path_of("optimizer"),
            "optimizer",
            OPTIMIZERS,
        )?,
        None => Optimizer::Adam,
    };
    let seed = match training.get("seed") {
        Some(node) => integer(reader, node, &training.path_of("seed"), 0)?,
        None => 42,
    };
    let early_stopping_patience = match training.get("early_stopping") {
        Some(node) => read_early_stopping(reader, node, &training.path_of("early_stopping"))?,
        None => None,
    };
    training.finish(reader);
    model.finish(reader);

    Ok(ModelConfig {
        kind,
        hidden_layers,
        activation,
        dropout,
        lookback_periods,
        scale_features,
        include_price_context,
        symbol_embedding_dim,
        learning_rate,
        batch_size,
        epochs,
        optimizer,
        early_stopping_patience,
        seed,
    })
}

/// The patience when early stopping is on.
fn read_early_stopping(reader: &mut Reader<'_>, node: &Node, path: &str) -> Result<Option<usize>> {
    let mut fields = Fields::of(reader, node, path)?;
    let enabled = match fields.get("enabled") {
        Some(node) => boolean(reader, node, &fields.path_of("enabled"))?,
        None => true,
    };
    let patience = match fields.get("patience") {
        Some(node) => count(reader, node, &fields.path_of("patience"), 1)?,
        None => DEFAULT_PATIENCE,
    };
    if let Some(node) = fields.get("min_delta") {
        // Checked for the file's sake; the trainer stops on any lack of improvement.
        number(
            reader,
            node,
            &fields.path_of("min_delta"),
            "a number >= 0",
            |value| value >= 0.0,
        )?;
    }
    fields.finish(reader);
    Ok(enabled.then_some(patience))
}

// ---------------------------------------------------------------------------
// training

fn read_training(reader: &mut Reader<'_>, node: &Node) -> Result<(LabelConfig, DataSplit)> {
    let mut training = Fields::of(reader, node, "training")?;
    if let Some(node) = training.get("method") {
        choice(
            reader,
            node,
            &training.path_of("method"),
            "training method",
            &[("supervised", ())],
        )?;
    }

    let labels_path = training.path_of("labels");
    let mut labels = Fields::of(reader, training.require(reader, "labels")?, &labels_path)?;
    if let Some(node) = labels.get("source") {
        choice(
            reader,
            node,
            &labels.path_of("source"),
            "label source",
            &[("zigzag", ())],
        )?;
    }
    let zigzag_threshold = number(
        reader,
        labels.require(reader, "zigzag_threshold")?,
        &labels.path_of("zigzag_threshold"),
        "a fraction in (0, 1), e.g. 0.02 for 2 %",
        |value| value > 0.0 && value < 1.0,
    )?;
    let label_lookahead = count(
        reader,
        labels.require(reader, "label_lookahead")?,
        &labels.path_of("label_lookahead"),
        1,
    )?;
    labels.finish(reader);

    let split_path = training.path_of("data_split");
    let split_node = training.require(reader, "data_split")?;
    let mut split = Fields::of(reader, split_node, &split_path)?;
    let mut fraction = |key: &str, expected: &str, check: fn(f64) -> bool| -> Result<f64> {
        let node = split.require(reader, key)?;
        number(reader, node, &split.path_of(key), expected, check)
    };
    let train = fraction("train", "a number > 0", |value| value > 0.0)?;
    let validation = fraction("validation", "a number >= 0", |value| value >= 0.0)?;
    let test = fraction("test", "a number >= 0", |value| value >= 0.0)?;
    let sum = train + validation + test;
    if (sum - 1.0).abs() > 1e-6 {
        return Err(reader.invalid(
            split_node.pos,
            &split_path,
            format!("train + validation + test must be 1, found {}", show(sum)),
        ));
    }
    split.finish(reader);
    training.finish(reader);

    Ok((
        LabelConfig {
            zigzag_threshold,
            label_lookahead,
        },
        DataSplit {
            train,
            validation,
            test,
        },
    ))
}
