using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraSb;

/// <summary>
/// LoRA-SB's data-dependent initialisation (reference §4b; official <c>estimate_and_process_grads_torch_3</c> and
/// <c>find_and_initialize_grad</c>): estimate the full-weight gradient G of every adapted layer on the first
/// <c>calibration_samples</c> training rows, approximate the first update (<c>ΔW₁ = −η·sign(G)</c>, or <c>−η·G</c>), and set
/// each layer's B·R·A to the rank-r truncated SVD of ΔW₁. The trainer runs it through <see cref="ITrainingHooks.Calibrate"/>
/// before the first step of a fresh run; it can also be called directly.
/// </summary>
public static class LoraSbCalibration
{
    /// <summary>
    /// Calibrates adapter <paramref name="adapterName"/> of <paramref name="model"/> on the first
    /// <c>calibration_samples</c> rows of <paramref name="data"/> (the last batch read is cut to the rows still needed).
    /// <paramref name="loss"/> returns a batch's mean loss; G is the gradient of the mean loss over all rows read,
    /// <c>G = Σ_b n_b ∇L_b / N</c>. Only the adapted layers' base weights get gradients (each is made trainable for the
    /// pass and restored after); nothing else in the model changes except the adapter's B, R and A.
    /// </summary>
    public static void Calibrate(PeftModel model, string adapterName, IEnumerable<Batch> data, BatchLoss loss)
    {
        var config = model.Configs.TryGetValue(adapterName, out var c) && c is LoraSbConfig sb
            ? sb
            : throw new PeftException($"'{adapterName}' is not a LoRA-SB adapter of this model");
        var lr = config.CalibrationLearningRate ?? throw new ConfigException(
            "calibration_lr must be set to calibrate a LoRA-SB adapter (the official code uses the first warm-up step's lr, lr / (warmup_ratio · total_steps))");
        var layers = Layers(model, adapterName);
        if (layers.Count == 0)
        {
            throw new PeftException($"LoRA-SB adapter '{adapterName}' adapts no layer");
        }
        var gradients = EstimateGradients(model, layers, data, loss, config.CalibrationSamples);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        try
        {
            foreach (var (layer, g) in layers.Zip(gradients))
            {
                var update = config.CalibrationUpdate == LoraSbConfig.SignUpdate ? -lr * g.sign() : -lr * g;
                layer.InitialiseFromUpdate(adapterName, update);
            }
        }
        finally
        {
            foreach (var g in gradients)
            {
                g.Dispose();
            }
        }
    }

    /// <summary>True when some layer's R is non-zero: the adapter was calibrated, loaded or randomly initialised already.</summary>
    public static bool IsInitialised(PeftModel model, string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        return Layers(model, adapterName).Any(l => l.R(adapterName).count_nonzero().item<long>() > 0);
    }

    internal static List<LoraSbLayer> Layers(PeftModel model, string adapterName) =>
        [.. model.AdapterLayers().Select(l => l.Layer).OfType<LoraSbLayer>().Where(l => l.AdapterNames.Contains(adapterName))];

    // One gradient per layer, [out, in], fp32 (fp64 for fp64 weights), owned by no scope.
    private static List<Tensor> EstimateGradients(PeftModel model, List<LoraSbLayer> layers, IEnumerable<Batch> data, BatchLoss loss, int samples)
    {
        var all = model.Model.parameters().ToList();
        var previous = all.Select(p => p.requires_grad).ToList();
        var weights = layers.Select(l => l.Base.Weight).Distinct().ToList();
        var sums = layers.Select(_ => (Tensor?)null).ToList();
        long seen = 0;
        try
        {
            foreach (var p in all)
            {
                p.requires_grad = false;
            }
            foreach (var w in weights)
            {
                w.grad = null;
                w.requires_grad = true;
            }
            foreach (var batch in data)
            {
                if (seen >= samples)
                {
                    break;
                }
                using var scope = torch.NewDisposeScope();
                var rows = Math.Min(batch.Rows, samples - seen);
                var lossValue = loss(rows == batch.Rows ? batch : Head(batch, rows));
                // Weighting each batch's mean loss by its rows makes the sum the gradient of the mean over all rows (÷ N below).
                (lossValue * (double)rows).backward();
                seen += rows;
            }
            if (seen == 0)
            {
                throw new PeftException("LoRA-SB calibration: the data yielded no rows");
            }
            using var noGrad = torch.no_grad();
            for (var i = 0; i < layers.Count; i++)
            {
                var layer = layers[i];
                var g = layer.Base.Weight.grad ?? throw new PeftException(
                    $"LoRA-SB calibration: the loss does not depend on the {layer.Base.InFeatures} → {layer.Base.OutFeatures} layer's weight (no gradient)");
                var outIn = layer.Base.FanInFanOut ? g.t() : g;
                var mean = outIn.to_type(WeightFactors.ComputeType(outIn.dtype)) / (double)seen;
                mean.DetachFromDisposeScope();
                sums[i] = mean;
            }
            return [.. sums.Select(s => s!)];
        }
        catch
        {
            foreach (var s in sums)
            {
                s?.Dispose();
            }
            throw;
        }
        finally
        {
            foreach (var w in weights)
            {
                w.grad = null;
            }
            for (var i = 0; i < all.Count; i++)
            {
                all[i].requires_grad = previous[i];
            }
        }
    }

    private static Batch Head(Batch b, long rows) => new(
        b.InputIds.narrow(0, 0, rows),
        b.AttentionMask?.narrow(0, 0, rows),
        b.Labels?.narrow(0, 0, rows),
        b.TokenTypeIds?.narrow(0, 0, rows),
        b.ClassLabels?.narrow(0, 0, rows));
}
