//! Renders a market-data load's structured progress as the one-line message users see.

use std::fmt;

use crate::ProgressRenderer;
use crate::eta::format_duration;
use crate::state::{DataContext, ProgressContext, ProgressState};

/// Renders [`ProgressContext::Data`] as, for example,
/// `Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars ETA 2m 05s [1/2]`.
///
/// The parts, in order: `Loading` and the symbol (`Loading data` without
/// one), the timeframe in brackets, the load mode in parentheses, the segment,
/// the bars loaded so far when there are any (`1 bar`, `2 bars`; plain digits,
/// no separators), `ETA` and [`format_duration`] of [`ProgressState::eta`]
/// when it is known, and last [`ProgressState::step`]. Every part the state
/// lacks is left out, and blank names count as absent.
///
/// For any other context the state's own `message` is returned, or
/// `Loading data` when it is empty.
#[derive(Debug, Default, Clone, Copy)]
pub struct DataProgressRenderer;

impl ProgressRenderer for DataProgressRenderer {
    fn render(&self, state: &ProgressState) -> String {
        match &state.context {
            ProgressContext::Data(context) => DataLine { context, state }.to_string(),
            ProgressContext::None | ProgressContext::Training(_) => {
                if state.message.is_empty() {
                    "Loading data".to_owned()
                } else {
                    state.message.clone()
                }
            }
        }
    }
}

/// The rendered line, written straight into the output buffer.
struct DataLine<'a> {
    context: &'a DataContext,
    state: &'a ProgressState,
}

impl fmt::Display for DataLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = self.context;
        match non_blank(context.symbol.as_deref()) {
            Some(symbol) => write!(f, "Loading {symbol}")?,
            None => f.write_str("Loading data")?,
        }
        if let Some(timeframe) = non_blank(context.timeframe.as_deref()) {
            write!(f, " [{timeframe}]")?;
        }
        if let Some(mode) = non_blank(context.mode.as_deref()) {
            write!(f, " ({mode})")?;
        }
        if let Some(segment) = context.segment {
            write!(f, " [segment {segment}]")?;
        }
        match context.bars_loaded {
            0 => {}
            1 => f.write_str(" 1 bar")?,
            bars => write!(f, " {bars} bars")?,
        }
        if let Some(eta) = self.state.eta {
            write!(f, " ETA {}", format_duration(eta))?;
        }
        if let Some(step) = self.state.step {
            write!(f, " [{step}]")?;
        }
        Ok(())
    }
}

/// A name trimmed of surrounding whitespace, or `None` when nothing is left,
/// so that a blank name can never produce a double space.
fn non_blank(name: Option<&str>) -> Option<&str> {
    name.map(str::trim).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use expect_test::{Expect, expect};

    use super::*;
    use crate::state::{Step, TrainingContext};

    fn full_state() -> ProgressState {
        ProgressState {
            step: Some(Step::new(1, 2)),
            eta: Some(Duration::from_secs(125)),
            context: ProgressContext::Data(DataContext {
                symbol: Some("EURUSD".to_owned()),
                timeframe: Some("1h".to_owned()),
                mode: Some("tail".to_owned()),
                segment: Some(Step::new(3, 10)),
                bars_loaded: 12345,
            }),
            ..ProgressState::default()
        }
    }

    fn check(edit: impl FnOnce(&mut ProgressState, &mut DataContext), expected: Expect) {
        let mut state = full_state();
        let mut context = match &state.context {
            ProgressContext::Data(context) => context.clone(),
            ProgressContext::None | ProgressContext::Training(_) => unreachable!(),
        };
        edit(&mut state, &mut context);
        state.context = ProgressContext::Data(context);
        expected.assert_eq(&DataProgressRenderer.render(&state));
    }

    #[test]
    fn every_part() {
        check(
            |_, _| {},
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars ETA 2m 05s [1/2]"#]],
        );
    }

    #[test]
    fn absent_symbol() {
        check(
            |_, context| context.symbol = None,
            expect![[r#"Loading data [1h] (tail) [segment 3/10] 12345 bars ETA 2m 05s [1/2]"#]],
        );
        check(
            |_, context| context.symbol = Some("   ".to_owned()),
            expect![[r#"Loading data [1h] (tail) [segment 3/10] 12345 bars ETA 2m 05s [1/2]"#]],
        );
    }

    #[test]
    fn absent_parts_are_left_out() {
        check(
            |_, context| context.timeframe = None,
            expect![[r#"Loading EURUSD (tail) [segment 3/10] 12345 bars ETA 2m 05s [1/2]"#]],
        );
        check(
            |_, context| context.mode = None,
            expect![[r#"Loading EURUSD [1h] [segment 3/10] 12345 bars ETA 2m 05s [1/2]"#]],
        );
        check(
            |_, context| context.segment = None,
            expect![[r#"Loading EURUSD [1h] (tail) 12345 bars ETA 2m 05s [1/2]"#]],
        );
        check(
            |state, _| state.eta = None,
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars [1/2]"#]],
        );
        check(
            |state, _| state.step = None,
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars ETA 2m 05s"#]],
        );
    }

    #[test]
    fn bar_counts() {
        check(
            |_, context| context.bars_loaded = 0,
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] ETA 2m 05s [1/2]"#]],
        );
        check(
            |_, context| context.bars_loaded = 1,
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 1 bar ETA 2m 05s [1/2]"#]],
        );
        check(
            |_, context| context.bars_loaded = 2,
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 2 bars ETA 2m 05s [1/2]"#]],
        );
        check(
            |_, context| context.bars_loaded = u64::MAX,
            expect![[
                r#"Loading EURUSD [1h] (tail) [segment 3/10] 18446744073709551615 bars ETA 2m 05s [1/2]"#
            ]],
        );
    }

    #[test]
    fn eta_formats() {
        check(
            |state, _| state.eta = Some(Duration::ZERO),
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars ETA 0s [1/2]"#]],
        );
        check(
            |state, _| state.eta = Some(Duration::from_secs(3720)),
            expect![[r#"Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars ETA 1h 02m [1/2]"#]],
        );
        check(
            |state, _| state.eta = Some(Duration::MAX),
            expect![[
                r#"Loading EURUSD [1h] (tail) [segment 3/10] 12345 bars ETA 213503982334601d 07h [1/2]"#
            ]],
        );
    }

    #[test]
    fn empty_context() {
        let state = ProgressState {
            context: ProgressContext::Data(DataContext::default()),
            ..ProgressState::default()
        };
        expect![[r#"Loading data"#]].assert_eq(&DataProgressRenderer.render(&state));
    }

    #[test]
    fn huge_numbers_and_long_names() {
        check(
            |state, context| {
                state.step = Some(Step::new(u32::MAX, u32::MAX));
                context.segment = Some(Step::new(u32::MAX, u32::MAX));
                context.symbol = Some("Z".repeat(60));
            },
            expect![[
                r#"Loading ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ [1h] (tail) [segment 4294967295/4294967295] 12345 bars ETA 2m 05s [4294967295/4294967295]"#
            ]],
        );
    }

    #[test]
    fn other_contexts_fall_back_to_the_message() {
        let mut state = ProgressState::default();
        expect![[r#"Loading data"#]].assert_eq(&DataProgressRenderer.render(&state));
        state.message = "Resolving symbols".to_owned();
        state.context = ProgressContext::Training(TrainingContext::default());
        expect![[r#"Resolving symbols"#]].assert_eq(&DataProgressRenderer.render(&state));
    }
}
