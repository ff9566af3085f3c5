//! The `fuzzy_sets` section: the membership functions of each
//! indicator's feature.

use super::Result;
use super::reader::{Fields, Reader, join};
use super::values::{choice, list, mapping, number, show, show_all};
use super::yaml::{Node, Value, excerpt};
use crate::config::{FuzzySet, IndicatorConfig, IndicatorFuzzySets, Membership};

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
pub(super) fn read_fuzzy_sets(
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
