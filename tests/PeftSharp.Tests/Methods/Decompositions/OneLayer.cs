using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Decompositions;

/// <summary>One base layer named <c>layer</c> inside a Sequential, adapted by a config: the setting of the reference's hand examples.</summary>
internal static class OneLayer
{
    public const string Prefix = "base_model.model.layer.";

    public static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, AdapterConfig config)
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config with { TargetModules = TargetModules.Of("layer") }));
    }

    /// <summary>A bias-free Linear whose <c>[out, in]</c> weight is <paramref name="values"/> (row-major).</summary>
    public static nn.Module<Tensor, Tensor> Linear(int outFeatures, int inFeatures, params float[] values)
    {
        var lin = nn.Linear(inFeatures, outFeatures, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.copy_(torch.tensor(values, outFeatures, inFeatures));
        }
        return lin;
    }

    /// <summary>A GPT-2 Conv1D (<c>[in, out]</c> weight) with N(0, 1) weights: its constructor leaves the weight uninitialised.</summary>
    public static PeftSharp.Models.Common.Conv1D Conv1D(int inFeatures, int outFeatures)
    {
        var conv = new PeftSharp.Models.Common.Conv1D(inFeatures, outFeatures);
        using (torch.no_grad())
        {
            conv.weight.normal_();
        }
        return conv;
    }

    public static Tensor Matrix(int rows, int cols, params float[] values) => torch.tensor(values, rows, cols);

    /// <summary>The adapter layer of <see cref="Wrap"/>.</summary>
    public static T Layer<T>(PeftModel peft) where T : AdapterLayer => (T)peft.AdapterLayers().Single().Layer;
}
