//! The `indicators` section: each indicator, its parameters and its
//! feature id.

use std::collections::HashMap;

use super::Result;
use super::reader::{Fields, Reader};
use super::values::{choice, count, non_empty_list, non_empty_text, number, text};
use super::yaml::{Node, Pos, excerpt};
use crate::config::{IndicatorConfig, IndicatorKind, PriceSource};

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

pub(super) fn read_indicators(
    reader: &mut Reader<'_>,
    node: &Node,
) -> Result<Vec<IndicatorConfig>> {
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
