using PeftSharp.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>The kinds of module an adapter can wrap.</summary>
public enum BaseLayerKind
{
    /// <summary><c>nn.Linear</c>: weight <c>[out, in]</c>.</summary>
    Linear,

    /// <summary><c>nn.Embedding</c>: weight <c>[num_embeddings, dim]</c>.</summary>
    Embedding,

    /// <summary><c>nn.Conv2d</c>: weight <c>[out, in/groups, kh, kw]</c>.</summary>
    Conv2d,

    /// <summary>transformers' GPT-2 <c>Conv1D</c>: weight <c>[in, out]</c> (PEFT's <c>fan_in_fan_out</c>).</summary>
    Conv1D,
}

/// <summary>
/// A uniform view of the module an adapter wraps: its kind, sizes and weight. Adapters read and (for merges and
/// residual inits) rewrite the base weight only through this view.
/// </summary>
public sealed class BaseLayer
{
    private BaseLayer(nn.Module<Tensor, Tensor> module, BaseLayerKind kind, long inFeatures, long outFeatures)
    {
        Module = module;
        Kind = kind;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
    }

    public nn.Module<Tensor, Tensor> Module { get; }

    public BaseLayerKind Kind { get; }

    /// <summary>Linear/Conv1D: input features; Embedding: vocabulary size; Conv2d: input channels.</summary>
    public long InFeatures { get; }

    /// <summary>Linear/Conv1D: output features; Embedding: embedding dim; Conv2d: output channels.</summary>
    public long OutFeatures { get; }

    /// <summary>True when the stored weight is <c>[in, out]</c> (GPT-2 Conv1D), so ΔW is transposed before it is added.</summary>
    public bool FanInFanOut => Kind == BaseLayerKind.Conv1D;

    public Parameter Weight => Module switch
    {
        Linear l => l.weight!,
        Embedding e => e.weight!,
        Conv2d c => c.weight!,
        Conv1D c => c.weight,
        _ => throw new PeftException($"unsupported base layer {Module.GetType().Name}"),
    };

    public Parameter? Bias => Module switch
    {
        Linear l => l.bias,
        Conv2d c => c.bias,
        Conv1D c => c.bias,
        _ => null,
    };

    public Conv2d AsConv2d => Module as Conv2d ?? throw new PeftException($"{Module.GetType().Name} is not a Conv2d");

    public torch.Device Device => Weight.device;

    public ScalarType DType => Weight.dtype;

    /// <summary>Wraps a module of a supported kind; null for any other module.</summary>
    public static BaseLayer? TryCreate(nn.Module module) => module switch
    {
        Linear l => new BaseLayer(l, BaseLayerKind.Linear, l.in_features, l.out_features),
        Embedding e => new BaseLayer(e, BaseLayerKind.Embedding, e.weight!.shape[0], e.weight!.shape[1]),
        Conv2d c => new BaseLayer(c, BaseLayerKind.Conv2d, c.in_channels, c.out_channels),
        Conv1D c => new BaseLayer(c, BaseLayerKind.Conv1D, c.InFeatures, c.OutFeatures),
        _ => null,
    };

    /// <summary>Whether PEFT's <c>all-linear</c> counts this module (Linear and GPT-2 Conv1D).</summary>
    public static bool IsLinearLike(nn.Module module) => module is Linear or Conv1D;

    /// <summary>
    /// The weight in <c>[out, in]</c> layout (the layout ΔW is given in): Conv1D and Embedding weights are transposed
    /// (Embedding becomes <c>[dim, vocab]</c>, as PEFT treats it as fan_in_fan_out). A view; no copy.
    /// </summary>
    public Tensor OutInWeight() => ToOutIn(Weight);

    /// <summary>A tensor stored in this layer's weight layout, viewed in <c>[out, in]</c> layout (see <see cref="OutInWeight"/>).</summary>
    public Tensor ToOutIn(Tensor stored) => FanInFanOut || Kind == BaseLayerKind.Embedding ? stored.t() : stored;

    /// <summary>Overwrites the weight with <paramref name="outIn"/> given in <c>[out, in]</c> layout.</summary>
    public void SetFromOutIn(Tensor outIn)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        // The layout change is a transpose or nothing, so it is its own inverse.
        Weight.copy_(ToOutIn(outIn).to(Weight.dtype));
    }

    /// <summary>Adds <paramref name="deltaWeight"/> (in <c>[out, in]</c> layout for Linear-like layers) to the weight in place.</summary>
    public void AddToWeight(Tensor deltaWeight, double sign = 1.0)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Weight.add_(ToOutIn(deltaWeight).to(Weight.dtype), alpha: sign);
    }
}
