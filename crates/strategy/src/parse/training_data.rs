//! The `training_data` section: symbols, timeframes and the date range.

use std::fmt::Display;
use std::str::FromStr;

use market_data::{Symbol, Timeframe};

use super::Result;
use super::reader::{Fields, Reader};
use super::values::{choice, count, list, non_empty_list, parsed};
use super::yaml::Node;
use crate::config::TrainingData;

pub(super) fn read_training_data(reader: &mut Reader<'_>, node: &Node) -> Result<TrainingData> {
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
    pub(super) one: &'static str,
    pub(super) single_modes: &'static [&'static str],
    pub(super) multi_modes: &'static [&'static str],
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
