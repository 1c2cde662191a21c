using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.ConvKernel;

/// <summary>
/// What LoRA-C, convLoRA and CP-LoRA (and their DoRA forms) share: each builds a kernel update ΔK in the base weight's own
/// shape from its factors, <c>y = base(x) + s · conv(dropout(x), ΔK)</c> with the base's stride, padding (and padding mode),
/// dilation and groups; a subclass may compute that term without forming ΔK. With <c>use_dora</c>:
/// <c>y = b + (m/n)·conv(x, K + s·ΔK)</c>, computed as PEFT's DoRA does,
/// <c>y = base(x) + (m/n − 1)·conv(x, K) + (m/n)·s·conv(x, ΔK)</c>. Wraps Conv2d, and Linear as a 1×1 kernel (every method
/// then reduces to LoRA / DoRA on the <c>[out, in]</c> matrix).
/// </summary>
public abstract class KernelAdapterLayer : AdapterLayer
{
    private const string MagnitudeKey = "lora_magnitude_vector";

    private readonly AdapterModuleDict _dropout = new();
    private readonly AdapterParameterDict _magnitude = new();
    private readonly Dictionary<string, KernelLoraConfig> _configs = [];
    // The DoRA norm used at merge time: unmerge needs exactly it and it cannot be recovered from the merged weight.
    private readonly Dictionary<string, Tensor> _mergedNorms = [];

    protected KernelAdapterLayer(string name, BaseLayer baseLayer) : base(name, baseLayer)
    {
        if (baseLayer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv2d))
        {
            throw new PeftException($"{name} wraps Conv2d and Linear layers, not {baseLayer.Kind}");
        }
        if (baseLayer.Kind == BaseLayerKind.Conv2d && baseLayer.AsConv2d.padding is null)
        {
            throw new PeftException($"{name} on a Conv2d with padding '{baseLayer.AsConv2d.padding_type}' is not supported; give explicit padding");
        }
        register_module("lora_dropout", _dropout);
        register_module(MagnitudeKey, _magnitude);
    }

    /// <summary>The config of one adapter.</summary>
    public KernelLoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    /// <summary>The base weight's shape, which ΔK has: <c>[out, in]</c> (Linear) or <c>[out, in/groups, k_h, k_w]</c> (Conv2d).</summary>
    protected long[] KernelShape => Base.Weight.shape;

    /// <summary>The base conv, or null for a Linear base.</summary>
    protected Conv2d? BaseConv => Base.Kind == BaseLayerKind.Conv2d ? Base.AsConv2d : null;

    /// <summary>Allocates and initialises the factors (<paramref name="config"/>'s <c>init_lora_weights</c> decides which is zero).</summary>
    protected abstract void CreateFactors(string adapterName, KernelLoraConfig config);

    protected abstract void RemoveFactors(string adapterName);

    /// <summary>The unscaled kernel update ΔK in <see cref="KernelShape"/>.</summary>
    protected abstract Tensor ComposeKernel(string adapterName);

    /// <summary>The factors under their saved names (relative to the module).</summary>
    protected abstract IReadOnlyDictionary<string, Tensor> FactorTensors(string adapterName);

    /// <summary><c>conv(input, ΔK)</c> (unscaled, no bias). Default: forms ΔK; a subclass may run its factors as layers instead.</summary>
    protected virtual Tensor BranchOutput(string adapterName, Tensor input) => ApplyKernel(input, ComposeKernel(adapterName));

    /// <summary>The scaled update <c>s·ΔK</c> in the base weight's shape (before any DoRA rescaling).</summary>
    public Tensor KernelDelta(string adapterName) => ComposeKernel(adapterName) * _configs[adapterName].Scaling;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        if (config is not KernelLoraConfig c)
        {
            throw new PeftException($"{PeftType} layer got a {config.PeftType} config for adapter '{adapterName}'");
        }
        CreateFactors(adapterName, c);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
        if (c.UseDora)
        {
            using var _ = torch.no_grad();
            var norm = KernelDora.ChannelNorm(Base.Weight, KernelDelta(adapterName));
            _magnitude.Set(adapterName, new Parameter(norm.reshape(KernelDora.MagnitudeShape(Base)).contiguous()));
        }
    }

    protected override void RemoveAdapter(string adapterName)
    {
        RemoveFactors(adapterName);
        _dropout.Remove(adapterName);
        _magnitude.Remove(adapterName);
        if (_mergedNorms.Remove(adapterName, out var norm))
        {
            norm.Dispose();
        }
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var c = _configs[adapterName];
        var input = _dropout[adapterName].call(x.dtype == Base.DType ? x : x.to(Base.DType));
        var branch = BranchOutput(adapterName, input) * c.Scaling;
        if (!c.UseDora)
        {
            return result + (branch.dtype == result.dtype ? branch : branch.to(result.dtype));
        }
        var magnitude = _magnitude[adapterName];
        var norm = KernelDora.ChannelNorm(Base.Weight, KernelDelta(adapterName));
        var scale = magnitude / norm.reshape(magnitude.shape);
        Tensor baseTerm;
        if (training && c.Dropout > 0)
        {
            // The base term must see the same dropped-out input as the branch (PEFT recomputes it too).
            baseTerm = ApplyKernel(input, Base.Weight);
        }
        else
        {
            baseTerm = Base.Bias is { } bias ? result - bias.reshape(magnitude.shape) : result;
        }
        var update = (scale - 1) * baseTerm + scale * branch;
        return result + (update.dtype == result.dtype ? update : update.to(result.dtype));
    }

    /// <summary>
    /// <c>W' − W</c>: <c>s·ΔK</c>, or with DoRA <c>(m/n)·(W + s·ΔK) − W</c> (n the current detached norm), in the base
    /// weight's shape (Linear: <c>[out, in]</c>).
    /// </summary>
    public override Tensor? DeltaWeight(string adapterName)
    {
        var delta = KernelDelta(adapterName);
        if (!_configs[adapterName].UseDora)
        {
            return delta;
        }
        var w = Base.Weight.detach();
        var norm = KernelDora.ChannelNorm(w, delta);
        return RowScale(adapterName, norm) * (w + delta) - w;
    }

    private Tensor RowScale(string adapterName, Tensor norm) =>
        KernelDora.OverWeight(_magnitude[adapterName].detach().flatten() / norm, KernelShape.Length);

    protected override void MergeInto(string adapterName)
    {
        if (!_configs[adapterName].UseDora)
        {
            base.MergeInto(adapterName);
            return;
        }
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var delta = KernelDelta(adapterName);
        var norm = KernelDora.ChannelNorm(Base.Weight, delta);
        Base.Weight.copy_((RowScale(adapterName, norm) * (Base.Weight + delta)).to(Base.DType));
        _mergedNorms[adapterName] = norm.clone().DetachFromDisposeScope();
    }

    protected override void UnmergeFrom(string adapterName)
    {
        if (!_configs[adapterName].UseDora)
        {
            base.UnmergeFrom(adapterName);
            return;
        }
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        if (!_mergedNorms.Remove(adapterName, out var norm))
        {
            throw new PeftException($"{PeftType} adapter '{adapterName}' (use_dora) was not merged");
        }
        Base.Weight.copy_((Base.Weight / RowScale(adapterName, norm) - KernelDelta(adapterName)).to(Base.DType));
        norm.Dispose();
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>(FactorTensors(adapterName));
        if (_configs[adapterName].UseDora)
        {
            tensors[MagnitudeKey] = _magnitude[adapterName];
        }
        return tensors;
    }

    /// <summary>
    /// Applies a kernel of the base weight's shape the way the base layer applies its own (no bias): <c>F.linear</c>, or
    /// <c>F.conv2d</c> with the base's stride, padding, dilation and groups; a non-zero padding mode is applied explicitly
    /// first, so the adapter pads exactly as the base does (PEFT issue #3697 is the bug this avoids).
    /// </summary>
    protected Tensor ApplyKernel(Tensor input, Tensor kernel)
    {
        if (BaseConv is not { } conv)
        {
            return nn.functional.linear(input, kernel);
        }
        if (conv.padding_mode == PaddingModes.Zeros)
        {
            return nn.functional.conv2d(input, kernel, null, conv.stride, conv.padding, conv.dilation, conv.groups);
        }
        return nn.functional.conv2d(PadLikeBase(input), kernel, null, conv.stride, [0, 0], conv.dilation, conv.groups);
    }

    /// <summary>The input padded as the base conv pads it (its padding and padding mode), to be convolved with padding 0.</summary>
    protected Tensor PadLikeBase(Tensor input)
    {
        var conv = BaseConv ?? throw new PeftException("only a Conv2d base pads its input");
        var p = conv.padding!;
        var mode = conv.padding_mode == PaddingModes.Zeros ? PaddingModes.Constant : conv.padding_mode;
        return p[0] == 0 && p[1] == 0 ? input : nn.functional.pad(input, [p[1], p[1], p[0], p[0]], mode);
    }

    /// <summary>A new trainable tensor on the base layer's device and dtype, filled by the initialiser.</summary>
    protected Parameter NewFactor(params long[] shape) => new(torch.empty(shape, dtype: Base.DType, device: Base.Device));
}
