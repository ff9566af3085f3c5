//! A training's curves as `trdr ops plot` writes them and the dashboard
//! shows them: titled by strategy and id, the kept epoch and the baseline
//! marked once the training has its result.

use orchestrator_core::Operation;
use progress::EpochPoint;

/// The SVG of `operation`'s `epochs` (its finished epochs, in order).
pub fn training_chart(operation: &Operation, epochs: &[EpochPoint]) -> String {
    charts::training_curves_svg(&title(operation), epochs, &marks(operation))
}

fn title(operation: &Operation) -> String {
    let strategy = operation.params["strategy"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            operation.result.as_ref()?["strategy"]
                .as_str()
                .map(str::to_owned)
        });
    match strategy {
        Some(strategy) => format!("{strategy} · {}", operation.id),
        None => operation.id.to_string(),
    }
}

/// The kept epoch and the baseline, once a training has its result.
fn marks(operation: &Operation) -> charts::Marks {
    let result = operation.result.as_ref();
    charts::Marks {
        best_epoch: result
            .and_then(|result| result["report"]["best_epoch"].as_u64())
            .and_then(|epoch| u32::try_from(epoch).ok()),
        baseline_accuracy: result
            .and_then(|result| result["metrics"]["baseline"]["accuracy"].as_f64()),
    }
}
