using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Training.Optim;
using TorchSharp.Modules;

namespace PeftSharp.Training;

/// <summary>
/// The optimizer step the trainer is running: its 0-based index, its learning rate and the run's seed. Hooks that sample
/// (DyLoRA's rank) draw from <see cref="CreateRandom"/>, which depends on (seed, step) only, so a resumed run draws
/// exactly what an uninterrupted run draws.
/// </summary>
public readonly record struct TrainingStep(long Step, double LearningRate, int Seed)
{
    /// <summary>A host RNG for this step; <paramref name="stream"/> separates independent draws of one step.</summary>
    public Random CreateRandom(int stream = 0) => new(Seeds.Mix(Seed, Step, stream));
}

/// <summary>
/// A structural change made by <see cref="ITrainingHooks.OnSchedule"/>: <paramref name="Old"/> was replaced in the model by
/// <paramref name="Replacement"/> (it keeps its name). The trainer rebuilds the optimizer state through
/// <paramref name="Map"/> (e.g. slice the Adam moments to the kept ranks); without a map, state is kept when the shape is
/// unchanged and reset otherwise.
/// </summary>
public sealed record ParameterChange(Parameter Old, Parameter Replacement, StateMap? Map = null);

/// <summary>
/// What a method may do around each training step, beyond the forward. Every member has a no-op default, and the
/// trainer only calls hooks that exist, so plain LoRA pays nothing. The trainer finds hooks on adapter layers
/// (<c>layer is ITrainingHooks</c>), on method descriptors implementing <see cref="ITrainingHooksProvider"/>, and in
/// <see cref="TrainerOptions.Hooks"/>. Order within one step:
/// <see cref="OnStepBegin"/> → forward/backward (accumulated) → NaN/Inf check → <see cref="PreStep"/> → clipping →
/// optimizer step → <see cref="PostStep"/> → zero grads → <see cref="OnSchedule"/> → next lr.
/// </summary>
public interface ITrainingHooks
{
    /// <summary>
    /// Once, before the first step of a fresh run (not on resume): data-dependent initialisation (LoRA-SB's gradient
    /// estimate, DiffoRA's search). <paramref name="data"/> is the training data in storage order, read lazily;
    /// take only what is needed.
    /// </summary>
    void Calibrate(IEnumerable<Batch> data, BatchLoss loss) { }

    /// <summary>Before the forward of a step: per-step stochastic structure (DyLoRA samples its rank here).</summary>
    void OnStepBegin(TrainingStep step) { }

    /// <summary>
    /// After backward, before clipping and the optimizer: rewrite gradients in place (<c>p.grad</c>) or replace them
    /// (LoRA-Pro, ALLoRA). <paramref name="parameters"/> are the trainable parameters that have gradients.
    /// </summary>
    void PreStep(TrainingStep step, IReadOnlyList<NamedParameter> parameters) { }

    /// <summary>After the optimizer step: proximal or projection operations on the weights (SoRA's threshold).</summary>
    void PostStep(TrainingStep step) { }

    /// <summary>
    /// After the gradients are cleared: structural changes (pruning, rank changes, projector refresh). Return every
    /// parameter replaced in the model so the trainer rebuilds its optimizer state; empty when nothing changed.
    /// This runs inside the step's dispose scope: temporaries are freed with it, and the trainer detaches each returned
    /// replacement from the scope (TorchSharp would otherwise dispose a Parameter built there at the end of the step).
    /// </summary>
    IReadOnlyList<ParameterChange> OnSchedule(TrainingStep step, TrainingOptimizer optimizer) => [];

    /// <summary>
    /// When the method is an optimizer (GaLore, LoRA-Pro): an optimizer over the parameters of
    /// <paramref name="trainable"/> it claims; the default optimizer gets the rest. Null (default) claims none.
    /// </summary>
    TrainingOptimizer? CustomOptimizer(IReadOnlyList<NamedParameter> trainable) => null;
}

/// <summary>Hooks whose own state must survive a checkpoint (a pruning stage, a sampled structure).</summary>
public interface ICheckpointedHooks : ITrainingHooks
{
    /// <summary>Unique key of this hook's entry in the checkpoint's trainer_state.json.</summary>
    string StateName { get; }

    /// <summary>The state to save, as JSON.</summary>
    JsonNode SaveState();

    /// <summary>
    /// Restores the saved state on resume, before the trainable tensors are loaded: a hook that changed parameter
    /// shapes re-applies those changes here so the saved tensors fit, and returns the replaced parameters.
    /// </summary>
    IReadOnlyList<ParameterChange> RestoreState(JsonNode state);
}

/// <summary>Implemented by an <see cref="IAdapterMethod"/> whose training hooks act on the whole model (one sampled rank for every layer).</summary>
public interface ITrainingHooksProvider
{
    /// <summary>Hooks for adapter <paramref name="adapterName"/> of <paramref name="model"/>, or null if none are needed.</summary>
    ITrainingHooks? CreateHooks(PeftModel model, string adapterName);
}

/// <summary>Deterministic seed derivation (never <see cref="HashCode"/>, which is randomised per process).</summary>
public static class Seeds
{
    /// <summary>A seed that depends only on its inputs (SplitMix64 finaliser over the combined values).</summary>
    public static int Mix(int seed, long a, long b = 0)
    {
        unchecked
        {
            var z = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)a * 0xBF58476D1CE4E5B9UL ^ (ulong)b * 0x94D049BB133111EBUL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (int)(z & 0x7FFFFFFF);
        }
    }
}
