using PeftSharp.Core;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Miss;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Miss;

/// <summary>One Linear named <c>layer</c> under a Sequential, adapted by MiSS or Bone; blocks set by hand.</summary>
internal static class ShardTestHelpers
{
    /// <summary>A MISS or BONE config of the given variant targeting <c>layer</c>.</summary>
    public static ShardSharingConfig Config(string peftType, int rank, ShardInit init = ShardInit.Balance, int miniR = 1) => peftType switch
    {
        MissConfig.Type => new MissConfig { Rank = rank, InitWeights = init, MiniR = miniR, TargetModules = TargetModules.Of("layer") },
        BoneConfig.Type => new BoneConfig { Rank = rank, InitWeights = init, TargetModules = TargetModules.Of("layer") },
        _ => throw new ArgumentException(peftType),
    };

    public static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft) Wrap(nn.Module<Tensor, Tensor> layer, AdapterConfig config, string adapterName = "default")
    {
        var holder = nn.Sequential(("layer", layer));
        return (holder, PeftModel.Create(holder, config, adapterName));
    }

    /// <summary>The single adapter tensor of <paramref name="adapterName"/> (<c>miss_block</c> or <c>bone_block</c>).</summary>
    public static Tensor Block(PeftModel peft, string adapterName = "default") => peft.AdapterStateDict(adapterName).Values.Single();

    public static void SetBlock(PeftModel peft, Tensor value, string adapterName = "default")
    {
        using var _ = torch.no_grad();
        Block(peft, adapterName).copy_(value);
    }

    /// <summary>A bias-free Linear with the given <c>[out, in]</c> weight.</summary>
    public static nn.Module<Tensor, Tensor> Linear(double[,] weight, ScalarType dtype = ScalarType.Float32)
    {
        var w = torch.tensor(weight, dtype: dtype);
        var lin = nn.Linear(w.shape[1], w.shape[0], hasBias: false, dtype: dtype);
        using var _ = torch.no_grad();
        lin.weight!.copy_(w);
        return lin;
    }

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
}
