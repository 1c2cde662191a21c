using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Vera;

/// <summary>
/// VeRA on a Linear or GPT-2 Conv1D layer, with PEFT's in-memory names (<c>vera_lambda_b.&lt;adapter&gt;</c>
/// <c>[d_out]</c>, <c>vera_lambda_d.&lt;adapter&gt;</c> <c>[r]</c>). Forward, as PEFT's <c>vera.Linear.forward</c>:
/// <c>base(x) + λ_b ⊙ (B_s (λ_d ⊙ (A_s dropout(x))))</c>, where <c>A_s = vera_A[:, :d_in]</c> and
/// <c>B_s = vera_B[:d_out, :]</c> are slices of the adapter's shared frozen projections.
/// </summary>
public sealed class VeraLayer : AdapterLayer
{
    private readonly AdapterParameterDict _lambdaB = new();
    private readonly AdapterParameterDict _lambdaD = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, VeraConfig> _configs = [];
    private readonly Dictionary<string, VeraProjections> _projections = [];

    public VeraLayer(BaseLayer baseLayer) : base(nameof(VeraLayer), baseLayer)
    {
        register_module("vera_dropout", _dropout);
        register_module("vera_lambda_b", _lambdaB);
        register_module("vera_lambda_d", _lambdaD);
    }

    public override string PeftType => VeraConfig.Type;

    /// <summary>The config of one adapter.</summary>
    public VeraConfig ConfigOf(string adapterName) => _configs[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (VeraConfig)config;
        // A layer built outside PeftModel gets projections sized by itself alone.
        var projections = c.Projections ?? VeraProjections.Create(c, [Base]);
        if (projections.MaxIn < Base.InFeatures || projections.MaxOut < Base.OutFeatures || projections.Rank != c.Rank)
        {
            throw new PeftException(
                $"VeRA adapter '{adapterName}': shared projections vera_A [{projections.Rank}, {projections.MaxIn}] / vera_B [{projections.MaxOut}, {projections.Rank}] " +
                $"cannot serve a layer with in_features {Base.InFeatures}, out_features {Base.OutFeatures} with r = {c.Rank}");
        }
        var device = Base.Device;
        var dtype = Base.DType;
        var lambdaB = new Parameter(torch.empty(Base.OutFeatures, dtype: dtype, device: device));
        var lambdaD = new Parameter(torch.empty(c.Rank, dtype: dtype, device: device));
        using (torch.no_grad())
        {
            // PEFT's update_layer creates λ_b = 1, λ_d ~ N(0, 1); reset_vera_parameters (init_weights) then sets λ_b = 0, λ_d = d_initial.
            if (c.InitWeights)
            {
                lambdaB.zero_();
                lambdaD.fill_(c.DInitial);
            }
            else
            {
                lambdaB.fill_(1.0);
                lambdaD.normal_();
            }
        }
        _lambdaB.Set(adapterName, lambdaB);
        _lambdaD.Set(adapterName, lambdaD);
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
        _projections[adapterName] = projections;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _lambdaB.Remove(adapterName);
        _lambdaD.Remove(adapterName);
        _dropout.Remove(adapterName);
        _configs.Remove(adapterName);
        // The projections are shared with other layers: dropped here, never disposed.
        _projections.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var lambdaB = _lambdaB[adapterName];
        var lambdaD = _lambdaD[adapterName];
        var (a, b) = Sliced(adapterName, lambdaD);
        var input = _dropout[adapterName].call(x.dtype == lambdaD.dtype ? x : x.to(lambdaD.dtype));
        var update = lambdaB * nn.functional.linear(lambdaD * nn.functional.linear(input, a), b);
        return result + update.to(result.dtype);
    }

    /// <summary><c>ΔW = (λ_b ⊙ B_s)(λ_d ⊙ A_s)</c>, i.e. <c>diag(λ_b) B_s diag(λ_d) A_s</c>, <c>[d_out, d_in]</c> (PEFT <c>get_delta_weight</c>).</summary>
    public override Tensor? DeltaWeight(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var lambdaB = _lambdaB[adapterName];
        var lambdaD = _lambdaD[adapterName];
        var (a, b) = Sliced(adapterName, lambdaD);
        // PEFT computes half-precision deltas in fp32 on the CPU; doing so everywhere costs nothing at these sizes.
        var compute = lambdaD.dtype is ScalarType.Float16 or ScalarType.BFloat16 ? ScalarType.Float32 : lambdaD.dtype;
        var delta = (lambdaB.to(compute).unsqueeze(-1) * b.to(compute)).matmul(lambdaD.to(compute).unsqueeze(-1) * a.to(compute));
        return delta.to(lambdaD.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>vera_lambda_b</c>, <c>vera_lambda_d</c>, and (with <c>save_projection</c>) the shared
    /// <c>base_model.vera_A</c> / <c>base_model.vera_B</c>, whole, as PEFT saves them.
    /// </summary>
    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["vera_lambda_b"] = _lambdaB[adapterName],
            ["vera_lambda_d"] = _lambdaD[adapterName],
        };
        if (_configs[adapterName].SaveProjection)
        {
            var p = _projections[adapterName];
            tensors["base_model.vera_A"] = p.A;
            tensors["base_model.vera_B"] = p.B;
        }
        return tensors;
    }

    // This layer's slices of the shared projections, on the device and in the dtype of its λ vectors.
    private (Tensor A, Tensor B) Sliced(string adapterName, Tensor like)
    {
        var p = _projections[adapterName];
        var a = p.A[.., ..(int)Base.InFeatures];
        var b = p.B[..(int)Base.OutFeatures, ..];
        return (a.to(like.dtype, like.device), b.to(like.dtype, like.device));
    }
}
