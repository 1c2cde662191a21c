using PeftSharp.Core;
using PeftSharp.Training;

namespace PeftSharp.Methods.DyLora;

/// <summary>
/// Samples the step's rank b ~ Uniform{1..r} once per optimizer step (not per micro-batch or layer, trap 4), as the official
/// <c>on_step_begin</c> callback, and sets it on every layer of the adapter. The draw comes from
/// <see cref="TrainingStep.CreateRandom"/>, a function of (seed, step), so a resumed run samples exactly what an
/// uninterrupted run samples and no state needs saving.
/// </summary>
public sealed class DyLoraHooks(PeftModel model, string adapterName) : ITrainingHooks
{
    /// <summary>The rank sampled for the current step (0 before the first).</summary>
    public int CurrentRank { get; private set; }

    /// <summary>The rank for step <paramref name="step"/> of a run with maximum rank <paramref name="maxRank"/>.</summary>
    public static int SampleRank(TrainingStep step, int maxRank) => step.CreateRandom().Next(1, maxRank + 1);

    public void OnStepBegin(TrainingStep step)
    {
        var r = ((DyLoraConfig)model.Configs[adapterName]).Rank;
        CurrentRank = SampleRank(step, r);
        foreach (var layer in model.AdapterLayers().Select(l => l.Layer).OfType<DyLoraLayer>().Where(l => l.AdapterNames.Contains(adapterName)))
        {
            layer.SetTrainingRank(adapterName, CurrentRank);
        }
    }
}
