using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lycoris;

/// <summary>
/// What LoHa and LoKr share, as PEFT's <c>LycorisLayer</c>: the adapter is a closed-form ΔW (in the base weight's own
/// shape) that the forward applies as a second linear map or convolution, <c>y = base(x) + F(x; ΔW)</c>, exactly as
/// PEFT's <c>_get_delta_activations</c> does (<c>F.linear</c> / <c>F.conv2d</c> with the base's stride, padding,
/// dilation and groups). Wraps <c>Linear</c> and <c>Conv2d</c>. Merging adds the same ΔW to the weight.
/// </summary>
public abstract class LycorisLayer : AdapterLayer
{
    private readonly Dictionary<string, LycorisConfig> _configs = [];

    protected LycorisLayer(string name, BaseLayer baseLayer) : base(name, baseLayer)
    {
        if (baseLayer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv2d))
        {
            throw new PeftException($"{name} wraps Linear and Conv2d layers, not {baseLayer.Kind}");
        }
        if (baseLayer.Kind == BaseLayerKind.Conv2d)
        {
            var conv = baseLayer.AsConv2d;
            if (conv.padding is null)
            {
                throw new PeftException($"{name} on a Conv2d with padding '{conv.padding_type}' is not supported; give explicit padding");
            }
            // The update is applied with F.conv2d's zero padding (as PEFT does); any other mode would make merged ≠ unmerged.
            if (conv.padding_mode != PaddingModes.Zeros)
            {
                throw new PeftException($"{name} on a Conv2d with padding_mode {conv.padding_mode} is not supported (only zeros)");
            }
        }
    }

    /// <summary>The resolved config (rank and alpha after patterns) of one adapter.</summary>
    public LycorisConfig ConfigOf(string adapterName) => _configs[adapterName];

    /// <summary>The base weight's shape: <c>[out, in]</c> for Linear, <c>[out, in/groups, k_h, k_w]</c> for Conv2d.</summary>
    protected long[] WeightShape => Base.Weight.shape;

    /// <summary>True for a Conv2d base whose kernel is larger than 1×1 (PEFT turns <c>use_effective_conv2d</c> off for 1×1).</summary>
    protected bool HasSpatialKernel => Base.Kind == BaseLayerKind.Conv2d && (WeightShape[2] != 1 || WeightShape[3] != 1);

    /// <summary>Allocates and initialises the adapter's factors for this (already pattern-resolved) config.</summary>
    protected abstract void CreateFactors(string adapterName, LycorisConfig config);

    protected abstract void RemoveFactors(string adapterName);

    /// <summary>The unscaled update built from the factors; any shape that reshapes to <see cref="WeightShape"/>.</summary>
    protected abstract Tensor ComposeUpdate(string adapterName);

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        if (config is not LycorisConfig c)
        {
            throw new PeftException($"{PeftType} layer got a {config.PeftType} config for adapter '{adapterName}'");
        }
        CreateFactors(adapterName, c);
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        RemoveFactors(adapterName);
        _configs.Remove(adapterName);
    }

    /// <summary>ΔW = compose(factors) · alpha / r, in the base weight's shape (no dropout: merging is deterministic).</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        (ComposeUpdate(adapterName) * _configs[adapterName].Scaling).reshape(WeightShape);

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var c = _configs[adapterName];
        // PEFT runs the adapter when rand(1) > module_dropout, and only draws in training mode.
        if (training && c.ModuleDropout > 0 && torch.rand(1).item<float>() <= c.ModuleDropout)
        {
            return result;
        }
        var delta = DeltaWeight(adapterName)!;
        if (training && c.RankDropout > 0)
        {
            delta = DropRows(delta, c);
        }
        var input = x.dtype == delta.dtype ? x : x.to(delta.dtype);
        Tensor update;
        if (Base.Kind == BaseLayerKind.Conv2d)
        {
            var conv = Base.AsConv2d;
            update = nn.functional.conv2d(input, delta, strides: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: conv.groups);
        }
        else
        {
            update = nn.functional.linear(input, delta);
        }
        return result + (update.dtype == result.dtype ? update : update.to(result.dtype));
    }

    // PEFT's rank dropout: keep each output row of ΔW with probability 1 − p; LoHa (and LoKr with rank_dropout_scale)
    // divide the mask by its mean so the expected update is unchanged.
    private static Tensor DropRows(Tensor delta, LycorisConfig c)
    {
        var keep = (torch.rand(delta.shape[0], device: delta.device) > c.RankDropout).to(delta.dtype);
        if (c.RescalesRankDropout)
        {
            keep = keep / keep.mean();
        }
        var view = new long[delta.dim()];
        Array.Fill(view, 1L);
        view[0] = -1;
        return delta * keep.view(view);
    }

    /// <summary>A new trainable tensor on the base layer's device and dtype, filled later by the initialiser.</summary>
    protected Parameter NewFactor(params long[] shape) => new(torch.empty(shape, dtype: Base.DType, device: Base.Device));

    /// <summary>PyTorch's default Linear init, which LyCORIS uses for every non-zero factor: Kaiming-uniform with a = √5.</summary>
    protected static void KaimingUniform(Tensor t)
    {
        using var _ = torch.no_grad();
        nn.init.kaiming_uniform_(t, Math.Sqrt(5));
    }

    protected static void Zeros(Tensor t)
    {
        using var _ = torch.no_grad();
        nn.init.zeros_(t);
    }

    /// <summary>
    /// The Tucker-style rebuild of a conv kernel (FedPara Prop. 3, PEFT's <c>make_weight_cp</c>):
    /// <c>K[o, i, h, w] = Σ_{p,q} a[p, o] · core[p, q, h, w] · b[q, i]</c>, with core <c>[r, r, k_h, k_w]</c>,
    /// a <c>[r, out]</c>, b <c>[r, in]</c>; the result is <c>[out, in, k_h, k_w]</c>.
    /// </summary>
    protected static Tensor RebuildKernel(Tensor core, Tensor a, Tensor b) =>
        a.t().matmul(core.permute(2, 3, 0, 1)).matmul(b).permute(2, 3, 0, 1);
}
