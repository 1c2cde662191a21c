using PeftSharp.Core;
using PeftSharp.Methods.ConvKernel;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.CpLora;

/// <summary>
/// CP-LoRA / CP-DoRA. Factors (saved names): <c>lora_cp_out [C_out, R]</c>, <c>lora_cp_in [C_in/groups, R]</c>,
/// <c>lora_cp_kh [k_h, R]</c>, <c>lora_cp_kw [k_w, R]</c>; <c>ΔK[o,i,h,w] = Σⱼ out[o,j]·in[i,j]·kh[h,j]·kw[w,j]</c>. A Linear
/// has only the out and in factors (<c>ΔW = out·inᵀ</c>). Without groups the branch runs as four small convolutions on the
/// padded input, never forming ΔK: 1×1 <c>C_in → R</c>, depthwise <c>k_h × 1</c> (stride, dilation along h), depthwise
/// <c>1 × k_w</c> (along w), 1×1 <c>R → C_out</c> — equal to one convolution with ΔK because its kernel is separable.
/// Init (the reference's choice): the out factor 0, so ΔK = 0; in, kh, kw uniform in ±1/√(their length), so their product
/// has the scale of LoRA's Kaiming-initialised A (bound 1/√(C_in·k_h·k_w)).
/// </summary>
public sealed class CpLoraLayer : KernelAdapterLayer
{
    private readonly AdapterParameterDict _out = new();
    private readonly AdapterParameterDict _in = new();
    private readonly AdapterParameterDict _kh = new();
    private readonly AdapterParameterDict _kw = new();

    public CpLoraLayer(BaseLayer baseLayer) : base(nameof(CpLoraLayer), baseLayer)
    {
        register_module("lora_cp_out", _out);
        register_module("lora_cp_in", _in);
        register_module("lora_cp_kh", _kh);
        register_module("lora_cp_kw", _kw);
    }

    public override string PeftType => CpLoraConfig.Type;

    protected override void CreateFactors(string adapterName, KernelLoraConfig config)
    {
        var rank = config.Rank;
        var shape = KernelShape;
        var factorOut = NewFactor(shape[0], rank);
        var factorIn = NewFactor(shape[1], rank);
        using (torch.no_grad())
        {
            Uniform(factorIn);
            if (config.InitLoraWeights)
            {
                nn.init.zeros_(factorOut);
            }
            else
            {
                nn.init.uniform_(factorOut, -1 / Math.Sqrt(rank), 1 / Math.Sqrt(rank));
            }
        }
        _out.Set(adapterName, factorOut);
        _in.Set(adapterName, factorIn);
        if (BaseConv is not null)
        {
            var kh = NewFactor(shape[2], rank);
            var kw = NewFactor(shape[3], rank);
            using (torch.no_grad())
            {
                Uniform(kh);
                Uniform(kw);
            }
            _kh.Set(adapterName, kh);
            _kw.Set(adapterName, kw);
        }
    }

    // U(±1/√n) for a factor of n rows.
    private static void Uniform(Tensor factor)
    {
        var bound = 1 / Math.Sqrt(factor.shape[0]);
        nn.init.uniform_(factor, -bound, bound);
    }

    protected override void RemoveFactors(string adapterName)
    {
        _out.Remove(adapterName);
        _in.Remove(adapterName);
        _kh.Remove(adapterName);
        _kw.Remove(adapterName);
    }

    protected override Tensor ComposeKernel(string adapterName)
    {
        if (BaseConv is null)
        {
            return _out[adapterName].matmul(_in[adapterName].t());
        }
        return torch.einsum("oj,ij,hj,wj->oihw", _out[adapterName], _in[adapterName], _kh[adapterName], _kw[adapterName]);
    }

    protected override Tensor BranchOutput(string adapterName, Tensor input)
    {
        if (BaseConv is not { groups: 1 } conv)
        {
            return base.BranchOutput(adapterName, input);
        }
        var rank = _out[adapterName].shape[1];
        var (kh, kw) = (_kh[adapterName], _kw[adapterName]);
        var h = nn.functional.conv2d(PadLikeBase(input), _in[adapterName].t().reshape(rank, -1, 1, 1));
        h = nn.functional.conv2d(h, kh.t().reshape(rank, 1, kh.shape[0], 1), null, [conv.stride[0], 1], [0, 0], [conv.dilation[0], 1], rank);
        h = nn.functional.conv2d(h, kw.t().reshape(rank, 1, 1, kw.shape[0]), null, [1, conv.stride[1]], [0, 0], [1, conv.dilation[1]], rank);
        return nn.functional.conv2d(h, _out[adapterName].reshape(-1, rank, 1, 1));
    }

    protected override IReadOnlyDictionary<string, Tensor> FactorTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["lora_cp_out"] = _out[adapterName],
            ["lora_cp_in"] = _in[adapterName],
        };
        if (_kh.Contains(adapterName))
        {
            tensors["lora_cp_kh"] = _kh[adapterName];
            tensors["lora_cp_kw"] = _kw[adapterName];
        }
        return tensors;
    }
}
