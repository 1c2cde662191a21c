using PeftSharp.Core;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;

namespace PeftSharp.Methods.Sora;

/// <summary>
/// The trainer's hooks for one SoRA adapter, over every layer that holds it (reference §7, official <c>SparseTrainer</c> +
/// <c>SparseAdamW</c>):
/// <list type="bullet">
/// <item><see cref="CustomOptimizer"/>: the gates get their own AdamW without weight decay (trap 4), lr = scheduled lr ×
/// <c>sparse_lr_scale</c>; A and B stay with the default optimizer.</item>
/// <item><see cref="PreStep"/>: the gradient of the L1 term <c>sparse_lambda·mean(|g|)</c> over all gate entries is added
/// to the gates' gradients (torch's subgradient, sign(0) = 0). It is the loss term's exact gradient; the logged loss
/// does not include the term.</item>
/// <item><see cref="PostStep"/>: each gate is thresholded with ξ of the step (<see cref="SoraThreshold.Xi"/>), times the
/// gates' lr with <c>threshold_times_lr</c>.</item>
/// </list>
/// ξ depends on the step index only, so a resumed run thresholds exactly as an uninterrupted one; no hook state is saved.
/// </summary>
public sealed class SoraHooks(PeftModel model, string adapterName) : ITrainingHooks
{
    private SoraConfig Config => (SoraConfig)model.Configs[adapterName];

    private List<Parameter> Gates() =>
        [.. model.AdapterLayers().Select(l => l.Layer).OfType<SoraLayer>().Where(l => l.AdapterNames.Contains(adapterName)).Select(l => l.Gate(adapterName))];

    /// <summary>ξ used by the last <see cref="PostStep"/> (NaN before the first).</summary>
    public double LastThreshold { get; private set; } = double.NaN;

    public TrainingOptimizer? CustomOptimizer(IReadOnlyList<NamedParameter> trainable)
    {
        var gates = Gates();
        var mine = trainable.Where(p => gates.Any(g => ReferenceEquals(g, p.Parameter))).ToList();
        if (mine.Count == 0)
        {
            return null;
        }
        var group = new ParameterGroup("sora_gate", mine, weightDecay: 0, learningRateScale: Config.SparseLearningRateScale);
        return new AdamWOptimizer([group], new AdamWOptions { WeightDecay = 0 });
    }

    public void PreStep(TrainingStep step, IReadOnlyList<NamedParameter> parameters)
    {
        var lambda = Config.SparseLambda;
        if (lambda == 0)
        {
            return;
        }
        var gates = Gates();
        var count = gates.Sum(g => g.numel());
        using var noGrad = torch.no_grad();
        foreach (var g in gates.Where(g => g.grad is not null))
        {
            using var scope = torch.NewDisposeScope();
            // d/dg of λ·Σ|g|/N: λ·sign(g)/N.
            g.grad!.add_(g.detach().sign(), alpha: lambda / count);
        }
    }

    public void PostStep(TrainingStep step)
    {
        var c = Config;
        var xi = SoraThreshold.Xi(c, step.Step);
        if (c.ThresholdTimesLearningRate)
        {
            xi *= step.LearningRate * c.SparseLearningRateScale;
        }
        LastThreshold = xi;
        if (xi <= 0)
        {
            return;
        }
        using var noGrad = torch.no_grad();
        foreach (var g in Gates())
        {
            using var scope = torch.NewDisposeScope();
            g.copy_(SoraThreshold.Apply(c.ThresholdForm, g, xi));
        }
    }
}
