using PeftSharp.Core;
using PeftSharp.Methods.Lycoris;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoKr;

/// <summary>
/// LoKr on a Linear or Conv2d layer, with PEFT's in-memory names (<c>lokr_w1.&lt;adapter&gt;</c>, …), as PEFT's
/// <c>lokr/layer.py</c>. With <c>(a, b) = Split(d_out)</c> and <c>(c, d) = Split(d_in)</c> (<see cref="LoKrFactorization"/>):
/// <c>ΔW = (W1 ⊗ W2) · alpha / r</c>, <c>W1 [a, c]</c> (<c>lokr_w1</c>, or <c>lokr_w1_a [a, r] · lokr_w1_b [r, c]</c> when
/// <c>decompose_both</c> and <c>r &lt; max(a, c) / 2</c>), <c>W2 [b, d]</c> (<c>lokr_w2</c>, or
/// <c>lokr_w2_a [b, r] · lokr_w2_b [r, d]</c> when <c>r &lt; max(b, d) / 2</c>). Conv2d: a full W2 carries the kernel
/// (<c>[b, d, k_h, k_w]</c>); a decomposed one either flattens it into <c>lokr_w2_b [r, d·k_h·k_w]</c> or, with
/// <c>use_effective_conv2d</c>, uses a core <c>lokr_t2 [r, r, k_h, k_w]</c> with <c>lokr_w2_a [r, b]</c>, <c>lokr_w2_b [r, d]</c>.
/// </summary>
public sealed class LoKrLayer : LycorisLayer
{
    private readonly AdapterParameterDict _w1 = new();
    private readonly AdapterParameterDict _w1a = new();
    private readonly AdapterParameterDict _w1b = new();
    private readonly AdapterParameterDict _w2 = new();
    private readonly AdapterParameterDict _w2a = new();
    private readonly AdapterParameterDict _w2b = new();
    private readonly AdapterParameterDict _t2 = new();

    public LoKrLayer(BaseLayer baseLayer) : base(nameof(LoKrLayer), baseLayer)
    {
        register_module("lokr_w1", _w1);
        register_module("lokr_w1_a", _w1a);
        register_module("lokr_w1_b", _w1b);
        register_module("lokr_w2", _w2);
        register_module("lokr_w2_a", _w2a);
        register_module("lokr_w2_b", _w2b);
        register_module("lokr_t2", _t2);
    }

    public override string PeftType => LoKrConfig.Type;

    protected override void CreateFactors(string adapterName, LycorisConfig config)
    {
        var c = (LoKrConfig)config;
        var r = c.Rank;
        var shape = WeightShape;
        var (outL, outK) = LoKrFactorization.Split(shape[0], c.DecomposeFactor);
        var (inM, inN) = LoKrFactorization.Split(shape[1], c.DecomposeFactor);
        var fullW1 = !(c.DecomposeBoth && r < Math.Max(outL, inM) / 2.0);
        var fullW2 = !(r < Math.Max(outK, inN) / 2.0);
        var kernel = Base.Kind == BaseLayerKind.Conv2d ? shape[2..] : [];
        var kernelSize = kernel.Aggregate(1L, (a, b) => a * b);

        if (fullW1)
        {
            _w1.Set(adapterName, NewFactor(outL, inM));
        }
        else
        {
            _w1a.Set(adapterName, NewFactor(outL, r));
            _w1b.Set(adapterName, NewFactor(r, inM));
        }
        if (fullW2)
        {
            _w2.Set(adapterName, NewFactor([outK, inN, .. kernel]));
        }
        else if (c.UseEffectiveConv2d && HasSpatialKernel)
        {
            _t2.Set(adapterName, NewFactor(r, r, kernel[0], kernel[1]));
            _w2a.Set(adapterName, NewFactor(r, outK));
            _w2b.Set(adapterName, NewFactor(r, inN));
        }
        else
        {
            _w2a.Set(adapterName, NewFactor(outK, r));
            _w2b.Set(adapterName, NewFactor(r, inN * kernelSize));
        }
        Initialise(adapterName, c.InitWeights);
    }

    // PEFT's reset_adapter_parameters (W1 side zero), reset_adapter_parameters_lycoris_way (W2 side zero) and
    // reset_adapter_parameters_random; lokr_t2 is always random.
    private void Initialise(string adapterName, LoKrInit init)
    {
        var zeroLeft = init == LoKrInit.Default;
        var zeroRight = init == LoKrInit.Lycoris;
        if (_w1.Contains(adapterName))
        {
            Fill(_w1[adapterName], zeroLeft);
        }
        else
        {
            Fill(_w1a[adapterName], zeroLeft);
            KaimingUniform(_w1b[adapterName]);
        }
        if (_w2.Contains(adapterName))
        {
            Fill(_w2[adapterName], zeroRight);
        }
        else
        {
            KaimingUniform(_w2a[adapterName]);
            Fill(_w2b[adapterName], zeroRight);
        }
        if (_t2.Contains(adapterName))
        {
            KaimingUniform(_t2[adapterName]);
        }
    }

    private static void Fill(Tensor t, bool zero)
    {
        if (zero)
        {
            Zeros(t);
        }
        else
        {
            KaimingUniform(t);
        }
    }

    protected override void RemoveFactors(string adapterName)
    {
        _w1.Remove(adapterName);
        _w1a.Remove(adapterName);
        _w1b.Remove(adapterName);
        _w2.Remove(adapterName);
        _w2a.Remove(adapterName);
        _w2b.Remove(adapterName);
        _t2.Remove(adapterName);
    }

    protected override Tensor ComposeUpdate(string adapterName)
    {
        var w1 = _w1.Contains(adapterName) ? _w1[adapterName] : _w1a[adapterName].matmul(_w1b[adapterName]);
        Tensor w2;
        if (_w2.Contains(adapterName))
        {
            w2 = _w2[adapterName];
        }
        else if (_t2.Contains(adapterName))
        {
            w2 = RebuildKernel(_t2[adapterName], _w2a[adapterName], _w2b[adapterName]);
        }
        else
        {
            w2 = _w2a[adapterName].matmul(_w2b[adapterName]);
        }
        // A 4-d right factor carries the kernel; the left factor gets 1×1 spatial dims so the product keeps it.
        if (w2.dim() == 4)
        {
            w1 = w1.unsqueeze(2).unsqueeze(3);
        }
        return torch.kron(w1, w2.contiguous());
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (key, dict) in new[] { ("lokr_w1", _w1), ("lokr_w1_a", _w1a), ("lokr_w1_b", _w1b), ("lokr_w2", _w2), ("lokr_w2_a", _w2a), ("lokr_w2_b", _w2b), ("lokr_t2", _t2) })
        {
            if (dict.Contains(adapterName))
            {
                tensors[key] = dict[adapterName];
            }
        }
        return tensors;
    }
}
