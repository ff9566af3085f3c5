//! Renders a training's structured progress as the one-line message users see.

use std::fmt;

use crate::ProgressRenderer;
use crate::state::{ProgressContext, ProgressState, Step, TrainingContext};

/// How many symbols are shown before the list is shortened.
const MAX_SYMBOLS_IN_FULL: usize = 2;
/// How many timeframes are shown before the list is shortened.
const MAX_TIMEFRAMES_IN_FULL: usize = 2;
/// How many entries a shortened list keeps before its `(+N more)`.
const SHOWN_WHEN_SHORTENED: usize = 2;

/// Renders [`ProgressContext::Training`] as, for example,
/// `Training MLP model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]`.
///
/// The design's rule, taken from the seed's own examples: up to two symbols
/// are shown, else the first two and `(+N more)` (`AAPL, MSFT (+1 more)` for
/// three); the model type is shown upper-case whatever its case in the
/// context (`mlp` → `MLP`); timeframes keep their own rule, up to two shown,
/// else the first two and `(+N more)` inside the brackets, each as the
/// context spells it (`1H`, `5m`). Every part the context lacks is left out,
/// and blank names count as absent.
/// The trailing `[k/n]` is [`ProgressState::step`]. Metrics (loss, accuracy,
/// throughput) are not part of the line: they are shown from the structured
/// fields.
///
/// For any other context the state's own `message` is returned, or
/// `Training model` when it is empty.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrainingProgressRenderer;

impl ProgressRenderer for TrainingProgressRenderer {
    fn render(&self, state: &ProgressState) -> String {
        match &state.context {
            ProgressContext::Training(context) => TrainingLine {
                context,
                step: state.step,
            }
            .to_string(),
            ProgressContext::None | ProgressContext::Data(_) => {
                if state.message.is_empty() {
                    "Training model".to_owned()
                } else {
                    state.message.clone()
                }
            }
        }
    }
}

/// The rendered line, written straight into the output buffer.
struct TrainingLine<'a> {
    context: &'a TrainingContext,
    step: Option<Step>,
}

impl fmt::Display for TrainingLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = self.context;
        f.write_str("Training")?;
        if let Some(model) = context.model_type.as_deref().and_then(non_blank) {
            write!(f, " {}", model.to_uppercase())?;
        }
        f.write_str(" model")?;
        if has_entries(&context.symbols) {
            write!(
                f,
                " on {}",
                ShortList::new(&context.symbols, MAX_SYMBOLS_IN_FULL)
            )?;
        }
        if has_entries(&context.timeframes) {
            write!(
                f,
                " [{}]",
                ShortList::new(&context.timeframes, MAX_TIMEFRAMES_IN_FULL)
            )?;
        }
        if let Some(epoch) = context.epoch {
            write!(f, " [epoch {epoch}]")?;
        }
        if let Some(batch) = context.batch {
            write!(f, " (batch {batch})")?;
        }
        if let Some(step) = self.step {
            write!(f, " [{step}]")?;
        }
        Ok(())
    }
}

/// A name trimmed of surrounding whitespace, or `None` when nothing is left,
/// so that a blank name can never produce a double space.
fn non_blank(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty()).then_some(name)
}

fn has_entries(names: &[String]) -> bool {
    names.iter().any(|name| non_blank(name).is_some())
}

/// A comma-separated list of the non-blank names: all of them when there are
/// at most `max_in_full`, else the first [`SHOWN_WHEN_SHORTENED`] and
/// `(+N more)`.
struct ShortList<'a> {
    names: &'a [String],
    max_in_full: usize,
}

impl<'a> ShortList<'a> {
    fn new(names: &'a [String], max_in_full: usize) -> Self {
        Self { names, max_in_full }
    }

    fn entries(&self) -> impl Iterator<Item = &'a str> {
        self.names.iter().filter_map(|name| non_blank(name))
    }
}

impl fmt::Display for ShortList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.entries().count();
        let shown = if total <= self.max_in_full {
            total
        } else {
            SHOWN_WHEN_SHORTENED
        };
        for (i, name) in self.entries().take(shown).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        if total > shown {
            write!(f, " (+{} more)", total - shown)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::state::DataContext;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|&name| name.to_owned()).collect()
    }

    fn numbered(prefix: &str, count: usize) -> Vec<String> {
        (1..=count).map(|i| format!("{prefix}{i}")).collect()
    }

    fn full_context() -> TrainingContext {
        TrainingContext {
            model_type: Some("MLP".to_owned()),
            symbols: names(&["AAPL"]),
            timeframes: names(&["1H"]),
            epoch: Some(Step::new(15, 50)),
            batch: Some(Step::new(342, 500)),
            ..TrainingContext::default()
        }
    }

    fn render(context: TrainingContext, step: Option<Step>) -> String {
        let state = ProgressState {
            step,
            context: ProgressContext::Training(context),
            ..ProgressState::default()
        };
        TrainingProgressRenderer.render(&state)
    }

    fn check(context: TrainingContext, step: Option<Step>, expected: Expect) {
        expected.assert_eq(&render(context, step));
    }

    fn check_symbols(count: usize, expected: Expect) {
        let context = TrainingContext {
            symbols: numbered("S", count),
            ..full_context()
        };
        check(context, None, expected);
    }

    fn check_timeframes(count: usize, expected: Expect) {
        let context = TrainingContext {
            timeframes: numbered("T", count),
            ..full_context()
        };
        check(context, None, expected);
    }

    /// The seed's four example lines, character for character: the three of
    /// the design and the one for `context = {'model_type': 'mlp', 'symbols':
    /// ['AAPL', 'MSFT', 'TSLA'], ...}`.
    #[test]
    fn the_seeds_four_example_lines() {
        check(
            full_context(),
            Some(Step::new(2, 4)),
            expect![[r#"Training MLP model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]"#]],
        );
        let four_symbols = TrainingContext {
            symbols: names(&["AAPL", "MSFT", "GOOG", "AMZN"]),
            timeframes: names(&["1H", "4H"]),
            batch: None,
            ..full_context()
        };
        check(
            four_symbols,
            Some(Step::new(3, 4)),
            expect![[r#"Training MLP model on AAPL, MSFT (+2 more) [1H, 4H] [epoch 15/50] [3/4]"#]],
        );
        let cnn = TrainingContext {
            model_type: Some("CNN".to_owned()),
            symbols: names(&["TSLA"]),
            timeframes: names(&["5m"]),
            epoch: Some(Step::new(8, 20)),
            batch: Some(Step::new(156, 800)),
            ..TrainingContext::default()
        };
        check(
            cnn,
            Some(Step::new(1, 4)),
            expect![[r#"Training CNN model on TSLA [5m] [epoch 8/20] (batch 156/800) [1/4]"#]],
        );
        let seed_context = TrainingContext {
            model_type: Some("mlp".to_owned()),
            symbols: names(&["AAPL", "MSFT", "TSLA"]),
            timeframes: names(&["1H", "4H"]),
            ..full_context()
        };
        check(
            seed_context,
            None,
            expect![[
                r#"Training MLP model on AAPL, MSFT (+1 more) [1H, 4H] [epoch 15/50] (batch 342/500)"#
            ]],
        );
    }

    #[test]
    fn model_type_is_upper_cased_whatever_its_case() {
        for given in ["mlp", "Mlp", " lstm ", "CNN"] {
            let context = TrainingContext {
                model_type: Some(given.to_owned()),
                ..full_context()
            };
            let line = render(context, None);
            let shown = given.trim().to_uppercase();
            assert_eq!(
                line,
                format!("Training {shown} model on AAPL [1H] [epoch 15/50] (batch 342/500)")
            );
        }
    }

    #[test]
    fn symbol_counts() {
        check_symbols(
            0,
            expect![[r#"Training MLP model [1H] [epoch 15/50] (batch 342/500)"#]],
        );
        check_symbols(
            1,
            expect![[r#"Training MLP model on S1 [1H] [epoch 15/50] (batch 342/500)"#]],
        );
        check_symbols(
            2,
            expect![[r#"Training MLP model on S1, S2 [1H] [epoch 15/50] (batch 342/500)"#]],
        );
        check_symbols(
            3,
            expect![[
                r#"Training MLP model on S1, S2 (+1 more) [1H] [epoch 15/50] (batch 342/500)"#
            ]],
        );
        check_symbols(
            4,
            expect![[
                r#"Training MLP model on S1, S2 (+2 more) [1H] [epoch 15/50] (batch 342/500)"#
            ]],
        );
        check_symbols(
            1000,
            expect![[
                r#"Training MLP model on S1, S2 (+998 more) [1H] [epoch 15/50] (batch 342/500)"#
            ]],
        );
    }

    #[test]
    fn timeframe_counts() {
        check_timeframes(
            0,
            expect![[r#"Training MLP model on AAPL [epoch 15/50] (batch 342/500)"#]],
        );
        check_timeframes(
            1,
            expect![[r#"Training MLP model on AAPL [T1] [epoch 15/50] (batch 342/500)"#]],
        );
        check_timeframes(
            2,
            expect![[r#"Training MLP model on AAPL [T1, T2] [epoch 15/50] (batch 342/500)"#]],
        );
        check_timeframes(
            3,
            expect![[
                r#"Training MLP model on AAPL [T1, T2 (+1 more)] [epoch 15/50] (batch 342/500)"#
            ]],
        );
        check_timeframes(
            100,
            expect![[
                r#"Training MLP model on AAPL [T1, T2 (+98 more)] [epoch 15/50] (batch 342/500)"#
            ]],
        );
    }

    #[test]
    fn absent_model_type() {
        let context = TrainingContext {
            model_type: None,
            ..full_context()
        };
        check(
            context,
            Some(Step::new(2, 4)),
            expect![[r#"Training model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]"#]],
        );
    }

    #[test]
    fn absent_epoch_batch_and_step() {
        let without_epoch = TrainingContext {
            epoch: None,
            ..full_context()
        };
        check(
            without_epoch,
            Some(Step::new(2, 4)),
            expect![[r#"Training MLP model on AAPL [1H] (batch 342/500) [2/4]"#]],
        );
        let without_epoch_or_batch = TrainingContext {
            epoch: None,
            batch: None,
            ..full_context()
        };
        check(
            without_epoch_or_batch,
            None,
            expect![[r#"Training MLP model on AAPL [1H]"#]],
        );
    }

    #[test]
    fn empty_context() {
        check(
            TrainingContext::default(),
            None,
            expect![[r#"Training model"#]],
        );
        check(
            TrainingContext::default(),
            Some(Step::new(1, 4)),
            expect![[r#"Training model [1/4]"#]],
        );
    }

    #[test]
    fn blank_names_are_absent() {
        let context = TrainingContext {
            model_type: Some("  ".to_owned()),
            symbols: names(&["", " AAPL ", "  "]),
            timeframes: names(&["", ""]),
            ..full_context()
        };
        check(
            context,
            None,
            expect![[r#"Training model on AAPL [epoch 15/50] (batch 342/500)"#]],
        );
    }

    #[test]
    fn huge_numbers() {
        let context = TrainingContext {
            epoch: Some(Step::new(u32::MAX, u32::MAX)),
            batch: Some(Step::new(u32::MAX, u32::MAX)),
            symbols: numbered("S", 4),
            ..full_context()
        };
        check(
            context,
            Some(Step::new(u32::MAX, u32::MAX)),
            expect![[
                r#"Training MLP model on S1, S2 (+2 more) [1H] [epoch 4294967295/4294967295] (batch 4294967295/4294967295) [4294967295/4294967295]"#
            ]],
        );
    }

    #[test]
    fn very_long_symbol_names_are_shown_whole() {
        let context = TrainingContext {
            symbols: vec!["X".repeat(80), "Y".repeat(40)],
            ..full_context()
        };
        check(
            context,
            None,
            expect![[
                r#"Training MLP model on XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX, YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY [1H] [epoch 15/50] (batch 342/500)"#
            ]],
        );
    }

    #[test]
    fn metrics_are_not_rendered() {
        let context = TrainingContext {
            train_loss: Some(0.25),
            train_accuracy: Some(0.9),
            val_loss: Some(0.3),
            val_accuracy: Some(0.85),
            samples_per_second: Some(1234.5),
            ..full_context()
        };
        let state = ProgressState {
            step: Some(Step::new(2, 4)),
            eta: Some(std::time::Duration::from_secs(125)),
            context: ProgressContext::Training(context),
            ..ProgressState::default()
        };
        expect![[r#"Training MLP model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]"#]]
            .assert_eq(&TrainingProgressRenderer.render(&state));
    }

    #[test]
    fn other_contexts_fall_back_to_the_message() {
        let mut state = ProgressState {
            step: Some(Step::new(1, 4)),
            ..ProgressState::default()
        };
        expect![[r#"Training model"#]].assert_eq(&TrainingProgressRenderer.render(&state));
        state.message = "Preparing features".to_owned();
        expect![[r#"Preparing features"#]].assert_eq(&TrainingProgressRenderer.render(&state));
        state.context = ProgressContext::Data(DataContext::default());
        expect![[r#"Preparing features"#]].assert_eq(&TrainingProgressRenderer.render(&state));
    }
}
