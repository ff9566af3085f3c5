//! `LocalTrainer`: the whole training of a strategy in this process — load
//! data, build features, train, evaluate and save — as four reported steps,
//! with the token checked between every symbol, series and phase.

use std::path::Path;
use std::time::Instant;

use market_data::{Bar, DataError, LocalStore, Timeframe};
use orchestrator_core::{CancellationToken, Cancelled};
use progress::{Items, ProgressContext, ProgressState, Step, TrainingContext};
use strategy::{
    Directories, PhaseSeconds, Quality, SplitLabels, SplitSizes, StrategyConfig, StrategyError,
    SymbolSamples, TrainingRequest, TrainingSummary, assemble, build_symbol_samples,
};

use crate::{
    ArtifactError, Checkpoints, TrainError, TrainOptions, save_artifact, train_with_checkpoints,
};

const STEPS: u32 = 4;
/// Overall percentages at which each step starts; the last one ends at 100.
const LOAD_DATA: (u32, f64) = (1, 0.0);
const BUILD_FEATURES: (u32, f64) = (2, 10.0);
const TRAIN: (u32, f64) = (3, 20.0);
const EVALUATE_AND_SAVE: (u32, f64) = (4, 90.0);

/// Why a training pipeline did not produce a model. A cancellation keeps
/// [`Cancelled`] in the source chain, wherever it was noticed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("loading data")]
    Data(#[from] DataError),
    #[error("building features")]
    Features(#[from] StrategyError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("saving the model")]
    Artifact(#[from] ArtifactError),
    #[error("training cancelled")]
    Cancelled(#[from] Cancelled),
}

/// Runs trainings in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalTrainer;

impl LocalTrainer {
    /// Runs the four steps of `request`, blocking; call it on a thread of its own.
    ///
    /// `progress` receives typed snapshots (`[k/4]`, a [`TrainingContext`]
    /// naming the model, symbols and timeframes); it must not block. With
    /// `checkpoints`, the training saves and resumes as
    /// [`train_with_checkpoints`] says.
    pub fn run(
        &self,
        request: &TrainingRequest,
        directories: &Directories,
        checkpoints: Option<&mut Checkpoints>,
        token: &CancellationToken,
        progress: &mut dyn FnMut(ProgressState),
    ) -> Result<TrainingSummary, PipelineError> {
        let strategy = request.strategy();
        let context = base_context(strategy);
        let mut phases = PhaseSeconds::default();

        let started = Instant::now();
        let series = load_series(request, &directories.data, &context, token, progress)?;
        phases.load_data = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let symbols = &strategy.training_data.symbols;
        let mut per_symbol: Vec<SymbolSamples> = Vec::with_capacity(symbols.len());
        for (index, (symbol, bars)) in symbols.iter().zip(series).enumerate() {
            token.check("building features")?;
            report_step(
                progress,
                &context,
                BUILD_FEATURES,
                TRAIN.1,
                index,
                symbols.len(),
            );
            per_symbol.push(build_symbol_samples(strategy, symbol, &bars)?);
        }
        token.check("building features")?;
        let data = assemble(strategy, per_symbol);
        phases.build_features = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let options = TrainOptions {
            progress_range: (TRAIN.1, EVALUATE_AND_SAVE.1),
            progress_step: Step::new(TRAIN.0, STEPS),
            ..TrainOptions::from(request.options())
        };
        let trained =
            train_with_checkpoints(strategy, &data, &options, checkpoints, token, progress)?;
        phases.train = started.elapsed().as_secs_f64();

        let started = Instant::now();
        report_step(progress, &context, EVALUATE_AND_SAVE, 100.0, 0, 2);
        let metrics = trained.evaluate(&data, token)?;
        report_step(progress, &context, EVALUATE_AND_SAVE, 100.0, 1, 2);
        let model_path = save_artifact(
            &directories.models,
            strategy,
            &data,
            &trained,
            &metrics,
            token,
        )?;
        phases.evaluate_and_save = started.elapsed().as_secs_f64();
        report_step(progress, &context, EVALUATE_AND_SAVE, 100.0, 2, 2);

        Ok(TrainingSummary {
            strategy: strategy.name.clone(),
            model_type: strategy.model.kind,
            symbols: strategy.training_data.symbols.clone(),
            timeframes: strategy.training_data.timeframes.clone(),
            backend: trained.model.backend(),
            device: trained.model.device_name().to_owned(),
            model_path,
            quality: Quality::assess(
                &metrics,
                &trained.report,
                SplitLabels::count(
                    &data.train.labels,
                    &data.validation.labels,
                    &data.test.labels,
                ),
            ),
            metrics,
            report: trained.report,
            samples: SplitSizes {
                train: data.train.len(),
                validation: data.validation.len(),
                test: data.test.len(),
            },
            features_per_bar: data.layout.width(),
            phase_seconds: phases,
        })
    }
}

/// One symbol's bars, per timeframe of the strategy.
type SymbolSeries = Vec<(Timeframe, Vec<Bar>)>;

/// Every series of every symbol, in the strategy's order of timeframes,
/// cut to the requested range; a timeframe the store lacks is resampled.
fn load_series(
    request: &TrainingRequest,
    data_dir: &Path,
    context: &TrainingContext,
    token: &CancellationToken,
    progress: &mut dyn FnMut(ProgressState),
) -> Result<Vec<SymbolSeries>, PipelineError> {
    let strategy = request.strategy();
    let store = LocalStore::new(data_dir);
    let timeframes = &strategy.training_data.timeframes;
    let total = strategy.training_data.symbols.len() * timeframes.len();
    let mut loaded = 0;
    let mut series = Vec::with_capacity(strategy.training_data.symbols.len());
    for symbol in &strategy.training_data.symbols {
        let mut by_timeframe = Vec::with_capacity(timeframes.len());
        for &timeframe in timeframes {
            token.check("loading data")?;
            report_step(
                progress,
                context,
                LOAD_DATA,
                BUILD_FEATURES.1,
                loaded,
                total,
            );
            let (mut bars, _) = store.read_or_resample(symbol, timeframe)?;
            bars.retain(|bar| {
                request.start().is_none_or(|start| bar.timestamp >= start)
                    && request.end().is_none_or(|end| bar.timestamp <= end)
            });
            by_timeframe.push((timeframe, bars));
            loaded += 1;
        }
        series.push(by_timeframe);
    }
    Ok(series)
}

fn base_context(strategy: &StrategyConfig) -> TrainingContext {
    TrainingContext {
        model_type: Some(strategy.model.kind.display_name().to_owned()),
        symbols: strategy
            .training_data
            .symbols
            .iter()
            .map(ToString::to_string)
            .collect(),
        timeframes: strategy
            .training_data
            .timeframes
            .iter()
            .map(ToString::to_string)
            .collect(),
        ..TrainingContext::default()
    }
}

/// Reports being `done` of `total` items into `step`, which spans the
/// overall percentages from its start to `end`.
fn report_step(
    progress: &mut dyn FnMut(ProgressState),
    context: &TrainingContext,
    (step, start): (u32, f64),
    end: f64,
    done: usize,
    total: usize,
) {
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    progress(ProgressState {
        percentage: start + (end - start) * fraction,
        step: Some(Step::new(step, STEPS)),
        items: Some(Items {
            processed: done as u64,
            total: Some(total as u64),
        }),
        context: ProgressContext::Training(context.clone()),
        ..ProgressState::default()
    });
}
