//! The terminal progress component shared by every long command: a bar and
//! the rendered message on a terminal, plain lines when piped, NDJSON events
//! with `--json`. It reads only structured fields, never parses messages.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orchestrator_core::{Operation, OperationStatus};
use progress::{ProgressContext, ProgressState, Step, format_duration};

/// How progress reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputMode {
    /// A live bar on stderr.
    Terminal,
    /// A line on stdout now and then, for logs and pipes.
    Plain,
    /// One JSON object per line on stdout.
    Json,
}

impl OutputMode {
    pub(crate) fn detect(json: bool) -> Self {
        if json {
            OutputMode::Json
        } else if std::io::stderr().is_terminal() {
            OutputMode::Terminal
        } else {
            OutputMode::Plain
        }
    }
}

/// Plain mode prints when the phase changes, else at most this often.
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(2);
const BAR_SCALE: u64 = 1000;

/// Shows the snapshots of one operation as they arrive.
#[derive(Debug)]
pub(crate) struct OperationDisplay {
    mode: OutputMode,
    bar: Option<ProgressBar>,
    last_plain: Option<(Milestone, Instant)>,
    last_json: Option<String>,
}

/// What makes a plain line worth printing at once: a new step, epoch or segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Milestone {
    status: OperationStatus,
    step: Option<Step>,
    epoch: Option<Step>,
    segment: Option<Step>,
}

impl Milestone {
    fn of(operation: &Operation) -> Self {
        let progress = &operation.progress;
        let (epoch, segment) = match &progress.context {
            ProgressContext::Training(training) => (training.epoch, None),
            ProgressContext::Data(data) => (None, data.segment),
            ProgressContext::None => (None, None),
        };
        Self {
            status: operation.status,
            step: progress.step,
            epoch,
            segment,
        }
    }
}

impl OperationDisplay {
    pub(crate) fn new(mode: OutputMode) -> Self {
        let bar = (mode == OutputMode::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(BAR_SCALE), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.green} [{bar:30.cyan/blue}] {percent:>3}% {msg}",
                )
                .expect("the progress template is valid")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            mode,
            bar,
            last_plain: None,
            last_json: None,
        }
    }

    /// Shows one snapshot.
    pub(crate) fn show(&mut self, operation: &Operation) {
        match self.mode {
            OutputMode::Terminal => {
                if let Some(bar) = &self.bar {
                    bar.set_position(bar_position(&operation.progress));
                    bar.set_message(status_line(&operation.progress));
                }
            }
            OutputMode::Plain => {
                let milestone = Milestone::of(operation);
                let due = match self.last_plain {
                    None => true,
                    Some((last, at)) => {
                        let phase_changed = last.status != milestone.status
                            || last.step != milestone.step
                            || last.epoch != milestone.epoch;
                        phase_changed || (last != milestone && at.elapsed() >= PLAIN_LINE_INTERVAL)
                    }
                };
                // Nothing to say until the work reports its first progress.
                let reported = !operation.progress.message.is_empty();
                if due && reported && !operation.status.is_terminal() {
                    self.last_plain = Some((milestone, Instant::now()));
                    println_flushed(&format!(
                        "[{:>3.0}%] {}",
                        operation.progress.percentage,
                        status_line(&operation.progress)
                    ));
                }
            }
            OutputMode::Json => {
                if let Some(event) = self.json_event(operation) {
                    println_flushed(&event);
                }
            }
        }
    }

    /// The NDJSON event of a snapshot; `None` for a progress event that
    /// would repeat the last one word for word: a snapshot can change only
    /// what a progress event does not carry (a checkpoint saved at an
    /// epoch's end), and readers count on progress that moves.
    fn json_event(&mut self, operation: &Operation) -> Option<String> {
        let terminal = operation.status.is_terminal();
        let event = serde_json::json!({
            "event": if terminal { "finished" } else { "progress" },
            "id": operation.id,
            "status": operation.status,
            "progress": operation.progress,
            "operation": terminal.then_some(operation),
        })
        .to_string();
        if !terminal && self.last_json.as_ref() == Some(&event) {
            return None;
        }
        self.last_json = Some(event.clone());
        Some(event)
    }

    /// Prints a note without tearing the bar.
    pub(crate) fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Removes the bar; the caller prints the outcome.
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for OperationDisplay {
    fn drop(&mut self) {
        self.finish();
    }
}

fn bar_position(progress: &ProgressState) -> u64 {
    let fraction = (progress.percentage / 100.0).clamp(0.0, 1.0);
    (fraction * BAR_SCALE as f64).round() as u64
}

/// The rendered message plus the live figures that are not part of it.
pub(crate) fn status_line(progress: &ProgressState) -> String {
    let mut line = progress.message.clone();
    if let ProgressContext::Training(training) = &progress.context {
        let mut figure = |label: &str, value: Option<f64>, percent: bool| {
            if let Some(value) = value {
                if percent {
                    line.push_str(&format!(" {label} {:.1}%", value * 100.0));
                } else {
                    line.push_str(&format!(" {label} {value:.4}"));
                }
            }
        };
        figure("loss", training.train_loss, false);
        figure("acc", training.train_accuracy, true);
        figure("val_loss", training.val_loss, false);
        figure("val_acc", training.val_accuracy, true);
        if let Some(rate) = training.samples_per_second {
            line.push_str(&format!(" {rate:.0} samples/s"));
        }
        if let Some(eta) = progress.eta {
            line.push_str(&format!(" ETA {}", format_duration(eta)));
        }
    }
    line
}

fn println_flushed(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) must not abort the work being watched.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use orchestrator_core::{Checkpoint, OperationKind};
    use progress::TrainingContext;

    use super::*;

    #[test]
    fn a_json_progress_event_is_not_repeated_when_only_the_checkpoint_changed() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 2, 40, 0).unwrap();
        let mut operation = Operation::new(OperationKind::Training, serde_json::json!({}), at);
        operation.status = OperationStatus::Running;
        operation.progress.percentage = 25.0;
        let mut display = OperationDisplay::new(OutputMode::Json);
        assert!(display.json_event(&operation).is_some());

        operation.checkpoint = Some(Checkpoint {
            path: "models/.checkpoints/op.ckpt".into(),
            bytes: 4096,
            epoch: 1,
            batch: 67,
            saved_at: at,
        });
        assert_eq!(display.json_event(&operation), None);

        operation.progress.percentage = 26.0;
        assert!(display.json_event(&operation).is_some());
        // The end is always said, with the whole operation.
        operation.status = OperationStatus::Completed;
        let finished = display.json_event(&operation).unwrap();
        assert!(finished.contains(r#""event":"finished""#), "{finished}");
        assert!(finished.contains(r#""checkpoint":{"#), "{finished}");
    }

    #[test]
    fn training_figures_follow_the_rendered_message() {
        let progress = ProgressState {
            message: "Training MLP model on EURUSD [1h] [epoch 3/20] (batch 41/120) [3/4]".into(),
            eta: Some(Duration::from_secs(125)),
            context: ProgressContext::Training(TrainingContext {
                train_loss: Some(0.61234),
                train_accuracy: Some(0.5123),
                val_accuracy: Some(0.48),
                samples_per_second: Some(12034.4),
                ..TrainingContext::default()
            }),
            ..ProgressState::default()
        };
        assert_eq!(
            status_line(&progress),
            "Training MLP model on EURUSD [1h] [epoch 3/20] (batch 41/120) [3/4] \
             loss 0.6123 acc 51.2% val_acc 48.0% 12034 samples/s ETA 2m 05s"
        );
    }

    #[test]
    fn data_lines_are_the_rendered_message() {
        let progress = ProgressState {
            message: "Loading EURUSD [1h] (local) [segment 1/1] 6225 bars".into(),
            ..ProgressState::default()
        };
        assert_eq!(status_line(&progress), progress.message);
        assert_eq!(
            bar_position(&ProgressState {
                percentage: 50.0,
                ..ProgressState::default()
            }),
            500
        );
        assert_eq!(
            bar_position(&ProgressState {
                percentage: f64::NAN,
                ..ProgressState::default()
            }),
            0
        );
    }
}
