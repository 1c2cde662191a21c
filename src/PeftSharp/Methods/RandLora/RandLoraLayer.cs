using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.RandLora;

/// <summary>
/// RandLoRA on a Linear or GPT-2 Conv1D layer, with PEFT's in-memory names (<c>randlora_lambda.&lt;adapter&gt;</c>
/// <c>[r, n]</c>, <c>randlora_gamma.&lt;adapter&gt;</c> <c>[n, d]</c>), d = min(d_in, d_out), D = max, n = ⌈d / r⌉.
/// As PEFT's <c>randlora.Linear.get_scaled_bases</c>: the d-side factor <c>S[i·n + j, :] = λ[i, j] · A[i, :d] ⊙ γ[j, :]</c>
/// (<c>[r·n, d]</c>), the D-side factor <c>U[:, j·r + i] = B[:D, j, i]</c> (<c>[D, n·r]</c>); column p of U meets row p of
/// S (a fixed permutation of the paper's pairing, kept for checkpoint compatibility). <c>ΔW = s · U S</c> when
/// d_in ≤ d_out, else <c>s · (U S)ᵀ</c>, with <c>s = randlora_alpha / r</c>; generically of full rank d.
/// </summary>
public sealed class RandLoraLayer : AdapterLayer
{
    private readonly AdapterParameterDict _lambda = new();
    private readonly AdapterParameterDict _gamma = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, RandLoraConfig> _configs = [];
    private readonly Dictionary<string, RandLoraBases> _bases = [];

    public RandLoraLayer(BaseLayer baseLayer) : base(nameof(RandLoraLayer), baseLayer)
    {
        register_module("randlora_dropout", _dropout);
        register_module("randlora_lambda", _lambda);
        register_module("randlora_gamma", _gamma);
    }

    public override string PeftType => RandLoraConfig.Type;

    /// <summary>min(d_in, d_out): the side the trainable scalings act on.</summary>
    public long MinDim => Math.Min(Base.InFeatures, Base.OutFeatures);

    /// <summary>max(d_in, d_out).</summary>
    public long MaxDim => Math.Max(Base.InFeatures, Base.OutFeatures);

    /// <summary>The config of one adapter.</summary>
    public RandLoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    /// <summary>Number of random bases n = ⌈min(d_in, d_out) / r⌉ this layer uses for one adapter.</summary>
    public long NumBasesOf(string adapterName) => RandLoraBases.NumBasesFor(MinDim, _configs[adapterName].Rank);

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (RandLoraConfig)config;
        // A layer built outside PeftModel gets bases sized by itself alone.
        var bases = c.Bases ?? RandLoraBases.Create(c, [Base]);
        var n = RandLoraBases.NumBasesFor(MinDim, c.Rank);
        if (bases.Rank != c.Rank || bases.MinDim < MinDim || bases.MaxDim < MaxDim || bases.NumBases < n)
        {
            throw new PeftException(
                $"RandLoRA adapter '{adapterName}': shared bases randlora_A [{string.Join(", ", bases.A.shape)}] / randlora_B [{string.Join(", ", bases.B.shape)}] " +
                $"cannot serve a layer with in_features {Base.InFeatures}, out_features {Base.OutFeatures} with r = {c.Rank} ({n} bases)");
        }
        var device = Base.Device;
        var dtype = Base.DType;
        var lambda = new Parameter(torch.empty(c.Rank, n, dtype: dtype, device: device));
        var gamma = new Parameter(torch.empty(n, MinDim, dtype: dtype, device: device));
        using (torch.no_grad())
        {
            // PEFT's update_layer: λ ~ N(0, 1), γ = 1 / max(d_in, d_out); reset_randlora_parameters (init_weights) then
            // sets λ = 0 and γ = 1 / max(γ.shape) = 1 / max(n, d).
            if (c.InitWeights)
            {
                lambda.zero_();
                gamma.fill_(1.0 / Math.Max(n, MinDim));
            }
            else
            {
                lambda.normal_();
                gamma.fill_(1.0 / MaxDim);
            }
        }
        _lambda.Set(adapterName, lambda);
        _gamma.Set(adapterName, gamma);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
        _bases[adapterName] = bases;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _lambda.Remove(adapterName);
        _gamma.Remove(adapterName);
        _dropout.Remove(adapterName);
        _configs.Remove(adapterName);
        // The bases are shared with other layers: dropped here, never disposed.
        _bases.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var (u, s) = Factors(adapterName);
        var input = _dropout[adapterName].call(x.dtype == s.dtype ? x : x.to(s.dtype));
        // Contract over the d side first (r·n wide), then expand to the D side: never materialises ΔW.
        var update = Base.InFeatures <= Base.OutFeatures
            ? nn.functional.linear(nn.functional.linear(input, s), u)
            : nn.functional.linear(nn.functional.linear(input, u.t()), s.t());
        return result + (update * _configs[adapterName].Scaling).to(result.dtype);
    }

    /// <summary><c>s · U S</c> (<c>[D, d]</c>), transposed when d_in &gt; d_out, so always <c>[d_out, d_in]</c> (PEFT <c>get_delta_weight</c>).</summary>
    public override Tensor? DeltaWeight(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var (u, s) = Factors(adapterName);
        var dtype = s.dtype;
        // PEFT computes half-precision deltas in fp32 on the CPU; doing so everywhere costs nothing at these sizes.
        if (dtype is ScalarType.Float16 or ScalarType.BFloat16)
        {
            (u, s) = (u.to(ScalarType.Float32), s.to(ScalarType.Float32));
        }
        var delta = u.matmul(s);
        if (Base.InFeatures > Base.OutFeatures)
        {
            delta = delta.t();
        }
        return (delta * _configs[adapterName].Scaling).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>randlora_lambda</c>, <c>randlora_gamma</c>, and (with <c>save_projection</c>) the shared bases twice, whole, as
    /// PEFT 0.20 saves them: under this module (<c>randlora_A</c>, <c>randlora_B</c>) and model-wide
    /// (<c>base_model.randlora_A</c>, <c>base_model.randlora_B</c>).
    /// </summary>
    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["randlora_lambda"] = _lambda[adapterName],
            ["randlora_gamma"] = _gamma[adapterName],
        };
        if (_configs[adapterName].SaveProjection)
        {
            var b = _bases[adapterName];
            tensors["randlora_A"] = b.A;
            tensors["randlora_B"] = b.B;
            tensors["base_model.randlora_A"] = b.A;
            tensors["base_model.randlora_B"] = b.B;
        }
        return tensors;
    }

    // U [D, n·r] (column j·r + i = B[:D, j, i]) and S [r·n, d] (row i·n + j = λ[i, j] · A[i, 0, :d] ⊙ γ[j, :]), on the
    // device and in the dtype of the trainable scalings.
    private (Tensor U, Tensor S) Factors(string adapterName)
    {
        var bases = _bases[adapterName];
        var lambda = _lambda[adapterName];
        var gamma = _gamma[adapterName];
        var n = lambda.shape[1];
        var a = bases.A[.., .., ..(int)MinDim].to(lambda.dtype, lambda.device);
        var b = bases.B[..(int)MaxDim, ..(int)n, ..].to(lambda.dtype, lambda.device);
        var scaled = lambda.unsqueeze(2) * a * gamma.unsqueeze(0);
        return (b.flatten(1), scaled.flatten(0, 1));
    }
}
