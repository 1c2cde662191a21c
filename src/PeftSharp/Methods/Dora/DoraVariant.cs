using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Dora;

/// <summary>
/// DoRA (Liu et al., arXiv 2402.09353): <c>W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖</c>, the norm taken per output feature
/// (per row in <c>[out, in]</c> layout; over the vocabulary for an Embedding; over <c>(C_in, kh, kw)</c> for a Conv2d) and
/// detached from backprop as the paper (§4.3) and PEFT do. PEFT stores it as LoRA with <c>use_dora</c>; the magnitude
/// is <c>lora_magnitude_vector</c>. The forward follows PEFT's <c>DoraLinearLayer</c>: it never materialises W' for the
/// matmul, <c>y = b + (m/n − 1) ⊙ W₀x + (m/n) ⊙ s·B·A·x</c>.
/// </summary>
public sealed class DoraVariant : ILoraVariant
{
    /// <summary>The registration hook for <see cref="LoraMethod"/>: DoRA handles configs with <c>use_dora</c>.</summary>
    public static ILoraVariant? Factory(LoraConfig config) => config.UseDora ? new DoraVariant() : null;

    /// <summary><c>--method dora</c>: LoRA with <c>use_dora</c>.</summary>
    public static MethodPreset Preset { get; } = new("dora", LoraConfig.Type,
        "Weight-decomposed LoRA: trained magnitude × LoRA-updated direction (Liu et al. 2024, arXiv 2402.09353)",
        "r·(d_in + d_out) + d_out", () => new LoraConfig { UseDora = true });

    private const string ChildName = "lora_magnitude_vector";

    // The norm used at merge time: unmerge needs exactly it, and it cannot be recovered from the merged weight.
    private Tensor? _mergedNorm;

    public void Init(LoraLayer layer, string adapterName)
    {
        using var _ = torch.no_grad();
        var norm = Norm(layer, adapterName);
        var magnitude = new MagnitudeVector(norm);
        layer.Child(ChildName, () => new AdapterModuleDict()).Set(adapterName, magnitude);
    }

    private static Parameter Magnitude(LoraLayer layer, string adapterName) =>
        ((MagnitudeVector)layer.Child(ChildName, () => new AdapterModuleDict())[adapterName]).weight;

    // ‖W + s·B·A‖ per output feature, detached; Linear/Conv1D/Embedding: [out]; Conv2d: [1, out, 1, 1] like PEFT's magnitude.
    private static Tensor Norm(LoraLayer layer, string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var combined = (layer.Base.OutInWeight() + layer.LoraDelta(adapterName)).detach().to(ScalarType.Float32);
        Tensor norm = layer.Base.Kind == BaseLayerKind.Conv2d
            ? combined.flatten(1).norm(1, keepdim: false).view(1, -1, 1, 1)
            : combined.norm(1, keepdim: false);
        return norm.to(layer.Base.DType).MoveToOuterDisposeScope();
    }

    public Tensor Forward(LoraLayer layer, string adapterName, Tensor x, Tensor result)
    {
        var s = layer.ConfigOf(adapterName).Scaling;
        var scale = Magnitude(layer, adapterName) / Norm(layer, adapterName);
        var b = layer.Base;
        if (b.Kind == BaseLayerKind.Embedding)
        {
            return scale * result + scale * layer.Branch(adapterName, x) * s;
        }
        Tensor input, baseResult;
        if (layer.DropsInput(adapterName))
        {
            // With dropout the base term must see the same dropped-out input as the LoRA branch (PEFT recomputes it).
            input = layer.DropoutOf(adapterName, x);
            baseResult = b.Kind switch
            {
                BaseLayerKind.Conv2d => ConvNoBias(b.AsConv2d, input),
                _ => nn.functional.linear(input, b.OutInWeight()),
            };
        }
        else
        {
            input = layer.DropoutOf(adapterName, x);
            baseResult = b.Bias is { } bias ? result - (b.Kind == BaseLayerKind.Conv2d ? bias.view(1, -1, 1, 1) : bias) : result;
        }
        if (b.Kind != BaseLayerKind.Conv2d)
        {
            scale = scale.view(-1);
        }
        return result + (scale - 1) * baseResult + scale * layer.Branch(adapterName, input) * s;
    }

    private static Tensor ConvNoBias(Conv2d conv, Tensor x) =>
        nn.functional.conv2d(x, conv.weight!, null, conv.stride, conv.padding, conv.dilation, conv.groups);

    private static Tensor RowScale(LoraLayer layer, string adapterName, Tensor norm)
    {
        var m = Magnitude(layer, adapterName).detach();
        var ratio = (m.flatten() / norm.flatten());
        return layer.Base.Kind == BaseLayerKind.Conv2d ? ratio.view(-1, 1, 1, 1) : ratio.view(-1, 1);
    }

    public Tensor EffectiveDelta(LoraLayer layer, string adapterName)
    {
        var w = layer.Base.OutInWeight().detach();
        var v = w + layer.LoraDelta(adapterName);
        return RowScale(layer, adapterName, Norm(layer, adapterName)) * v - w;
    }

    public void Merge(LoraLayer layer, string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var norm = Norm(layer, adapterName);
        var v = layer.Base.OutInWeight() + layer.LoraDelta(adapterName);
        layer.Base.SetFromOutIn(RowScale(layer, adapterName, norm) * v);
        _mergedNorm?.Dispose();
        _mergedNorm = norm.detach().clone().DetachFromDisposeScope();
    }

    public void Unmerge(LoraLayer layer, string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var norm = _mergedNorm ?? throw new PeftException($"DoRA adapter '{adapterName}' was not merged");
        var original = layer.Base.OutInWeight() / RowScale(layer, adapterName, norm) - layer.LoraDelta(adapterName);
        layer.Base.SetFromOutIn(original);
        _mergedNorm.Dispose();
        _mergedNorm = null;
    }

    public IReadOnlyDictionary<string, Tensor> Tensors(LoraLayer layer, string adapterName) =>
        new Dictionary<string, Tensor> { [ChildName] = Magnitude(layer, adapterName) };

    public void Remove(LoraLayer layer, string adapterName) => layer.Child(ChildName, () => new AdapterModuleDict()).Remove(adapterName);

    /// <summary>PEFT's <c>DoraLinearLayer</c>: holds the magnitude as <c>weight</c> (in memory <c>lora_magnitude_vector.&lt;adapter&gt;.weight</c>).</summary>
    private sealed class MagnitudeVector : nn.Module<Tensor, Tensor>
    {
        public Parameter weight;

        public MagnitudeVector(Tensor value) : base(nameof(MagnitudeVector))
        {
            weight = new Parameter(value);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => throw new PeftException("the DoRA magnitude vector is a parameter holder, not a layer");
    }
}
