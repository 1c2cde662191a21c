using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Miss;
using TorchSharp;
using static PeftSharp.Tests.Methods.Miss.ShardTestHelpers;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Miss;

/// <summary>
/// The numeric examples of ../shared/reference/methods_training.md §10 (computed by hand there), plus hand-computed
/// cases for the padded last shard and the mini variant. Bone and MiSS share the maths, so each runs under both types.
/// </summary>
public class MissReferenceTests
{
    public static TheoryData<string> Types() => new() { MissConfig.Type, BoneConfig.Type };

    private static readonly double[,] s_w0 = { { 1, 2, 0, 1 }, { 0, 1, 1, 0 }, { 2, 0, 1, 1 }, { 1, 1, 0, 2 } };

    [Theory]
    [MemberData(nameof(Types))]
    public void Bat_forward_and_merge_give_the_reference_W_prime_and_unmerge_recovers_W0(string peftType)
    {
        // fp64 so the unmerge can be held to the reference's 1e-15 scale.
        var (holder, peft) = Wrap(Linear(s_w0, ScalarType.Float64), Config(peftType, 2, ShardInit.Bat));
        Assert.Equal([2L, 2, 2], Block(peft).shape);
        SetBlock(peft, torch.tensor(new double[] { 0.1, 0, 0.2, -0.1, 0, 0.3, 0.1, 0.1 }, 2, 2, 2, dtype: ScalarType.Float64));
        var expected = torch.tensor(new double[,] { { 1.6, 1.8, 0.3, 0.9 }, { 0.4, 0.8, 1.3, -0.1 }, { 2.0, 0.9, 1.1, 1.7 }, { 1.2, 1.5, 0.3, 2.3 } }, dtype: ScalarType.Float64);
        var x = torch.tensor(new double[] { 1, -2, 0.5, 3, 0, 1, 2, -1 }, 2, 4, dtype: ScalarType.Float64);

        using (torch.no_grad())
        {
            Assert.True(MaxAbsDiff(holder.call(x), x.matmul(expected.t())) < 1e-14);
            peft.Merge();
            var weight = peft.AdapterLayers().Single().Layer.Base.Weight;
            Assert.True(MaxAbsDiff(weight, expected) < 1e-14);
            peft.Unmerge();
            Assert.True(MaxAbsDiff(weight, torch.tensor(s_w0, dtype: ScalarType.Float64)) < 1e-14);
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Balance_adds_D_transposed_times_the_sum_of_shards_as_in_the_reference(string peftType)
    {
        // Base weight 0, so the output is the adapter's alone: Δy = Dᵀ([1,2] + [3,4]) = [4, 6, 2].
        var (holder, peft) = Wrap(Linear(new double[3, 4]), Config(peftType, 2));
        SetBlock(peft, torch.tensor(new float[] { 1, 0, 2, 0, 1, -1 }, 2, 3));
        var x = torch.tensor(new float[] { 1, 2, 3, 4 }, 1, 4);
        var explicitDelta = torch.tensor(new float[] { 1, 0, 1, 0, 0, 1, 0, 1, 2, -1, 2, -1 }, 3, 4);
        using (torch.no_grad())
        {
            Assert.Equal(new float[] { 4, 6, 2 }, holder.call(x).data<float>().ToArray());
            Assert.True(MaxAbsDiff(peft.AdapterLayers().Single().Layer.DeltaWeight("default")!, explicitDelta) == 0);
            peft.Merge();
            Assert.True(MaxAbsDiff(peft.AdapterLayers().Single().Layer.Base.Weight, explicitDelta) == 0);
            Assert.Equal(new float[] { 4, 6, 2 }, holder.call(x).data<float>().ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Balance_pads_the_last_shard_when_r_does_not_divide_d_in(string peftType)
    {
        // d_in = 5, r = 2: shards [1,2] + [3,4] + [5,0] = [9,6]; Δy = 9·[1,0,2] + 6·[0,1,−1] = [9, 6, 12].
        // The merge gives the tail column the first (5 mod 2 = 1) column of Dᵀ: ΔW = [[1,0,1,0,1],[0,1,0,1,0],[2,−1,2,−1,2]].
        var (holder, peft) = Wrap(Linear(new double[3, 5]), Config(peftType, 2));
        SetBlock(peft, torch.tensor(new float[] { 1, 0, 2, 0, 1, -1 }, 2, 3));
        var x = torch.tensor(new float[] { 1, 2, 3, 4, 5 }, 1, 5);
        var explicitDelta = torch.tensor(new float[] { 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 2, -1, 2, -1, 2 }, 3, 5);
        using (torch.no_grad())
        {
            Assert.Equal(new float[] { 9, 6, 12 }, holder.call(x).data<float>().ToArray());
            peft.Merge();
            var weight = peft.AdapterLayers().Single().Layer.Base.Weight;
            Assert.True(MaxAbsDiff(weight, explicitDelta) == 0);
            Assert.Equal(new float[] { 9, 6, 12 }, holder.call(x).data<float>().ToArray());
            peft.Unmerge();
            Assert.True(MaxAbsDiff(weight, torch.zeros(3, 5)) == 0);
        }
    }

    [Fact]
    public void Mini_block_is_tiled_along_the_output()
    {
        // r = 2, mini_r = 2, d_out = 4: D = [[1,−1,1,−1],[0,2,0,2]]; x = [1,2,3,4] → shards sum [4,6] → Δy = [4, 8, 4, 8].
        var (holder, peft) = Wrap(Linear(new double[4, 4]), Config(MissConfig.Type, 2, ShardInit.Mini, miniR: 2));
        Assert.Equal([2L, 2], Block(peft).shape);
        SetBlock(peft, torch.tensor(new float[] { 1, -1, 0, 2 }, 2, 2));
        var x = torch.tensor(new float[] { 1, 2, 3, 4 }, 1, 4);
        using (torch.no_grad())
        {
            Assert.Equal(new float[] { 4, 8, 4, 8 }, holder.call(x).data<float>().ToArray());
            peft.Merge();
            var expectedDelta = torch.tensor(new float[] { 1, 0, 1, 0, -1, 2, -1, 2, 1, 0, 1, 0, -1, 2, -1, 2 }, 4, 4);
            Assert.True(MaxAbsDiff(peft.AdapterLayers().Single().Layer.Base.Weight, expectedDelta) == 0);
        }
    }
}
