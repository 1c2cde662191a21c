using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.LoraSb;
using PeftSharp.Tests.Methods.Decompositions;
using PeftSharp.Tests.Support;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoraSb;

/// <summary>
/// LoRA-SB: the reference's §4b example, and the calibration on a one-layer model with a synthetic loss whose gradient is
/// known by hand. With <c>loss = mean over rows of ⟨y_row, c_row⟩</c> and <c>y = W x + b</c>, the gradient of the loss
/// over the N calibration rows is <c>(1/N) Σ c_k x_kᵀ</c>, whatever W and b are.
/// </summary>
public class LoraSbTests
{
    // Reference §4b: G = [[0.3,−1.2],[0.5,0.7],[−0.1,0.2]], η = 0.01, r = 1. ΔW₁ = −η·sign(G) has σ = [0.02, 0.014142] and
    // its rank-1 truncation is [[−0.01, 0.01], [0, 0], [0.01, −0.01]].
    private static readonly float[] s_referenceG = [0.3f, -1.2f, 0.5f, 0.7f, -0.1f, 0.2f];
    private static readonly float[] s_referenceBra = [-0.01f, 0.01f, 0, 0, 0.01f, -0.01f];

    private static Tensor Loss(nn.Module<Tensor, Tensor> net, Batch b) => (net.call(b.InputIds) * b.Labels!).sum(1).mean();

    // x_k = e_k and c_k = column k of G: (1/2) Σ c_k x_kᵀ = G / 2, whose sign is sign(G).
    private static Batch ReferenceBatch() => new(
        torch.eye(2),
        Labels: OneLayer.Matrix(3, 2, s_referenceG).t().contiguous());

    private static LoraSbLayer SbLayer(PeftModel peft) => OneLayer.Layer<LoraSbLayer>(peft);

    private static Tensor Bra(LoraSbLayer layer) => layer.B("default").matmul(layer.R("default")).matmul(layer.A("default"));

    [Fact]
    public void Reference_example_truncated_svd_of_the_sign_update()
    {
        var (_, peft) = OneLayer.Wrap(nn.Linear(2, 3), new LoraSbConfig { Rank = 1 });
        var layer = SbLayer(peft);
        var update = -0.01 * OneLayer.Matrix(3, 2, s_referenceG).sign();
        layer.InitialiseFromUpdate("default", update);
        var bra = Bra(layer);
        Assert.True(Weights.MaxAbsDiff(bra, OneLayer.Matrix(3, 2, s_referenceBra)) < 1e-7);
        Assert.Equal(0.014142, (update - bra).norm().item<float>(), 5);
        Assert.Equal(0.02, layer.R("default").item<float>(), 6);
        Assert.True(Weights.MaxAbsDiff(layer.B("default").t().matmul(layer.B("default")), torch.eye(1)) < 1e-6);
        Assert.True(Weights.MaxAbsDiff(layer.A("default").matmul(layer.A("default").t()), torch.eye(1)) < 1e-6);
        Assert.Equal(1.0, layer.ScalingOf("default"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Calibration_gives_the_truncated_svd_of_minus_lr_sign_gradient(bool conv1D)
    {
        torch.manual_seed(1);
        nn.Module<Tensor, Tensor> proj = conv1D ? OneLayer.Conv1D(2, 3) : nn.Linear(2, 3);
        var (net, peft) = OneLayer.Wrap(proj, new LoraSbConfig { Rank = 1, CalibrationSamples = 2, CalibrationLearningRate = 0.01 });
        var baseLayer = SbLayer(peft).Base;
        var w0 = baseLayer.Weight.detach().clone();
        using var x = torch.randn(4, 2);
        using var before = net.call(x);

        LoraSbCalibration.Calibrate(peft, "default", [ReferenceBatch()], b => Loss(net, b));

        Assert.True(Weights.MaxAbsDiff(Bra(SbLayer(peft)), OneLayer.Matrix(3, 2, s_referenceBra)) < 1e-7);
        Assert.True(Weights.Exact(baseLayer.Weight, w0), "calibration must not change the base weight");
        Assert.False(baseLayer.Weight.requires_grad, "the base weight is frozen again after calibration");
        Assert.Null(baseLayer.Weight.grad);
        Assert.True(SbLayer(peft).R("default").requires_grad);
        using var after = net.call(x);
        Assert.False(after.allclose(before), "a calibrated LoRA-SB adapter is not the identity (reference §4b)");
    }

    [Fact]
    public void Gradient_update_uses_the_mean_over_exactly_the_first_N_rows()
    {
        // G = 3·u₁v₁ᵀ + 1·u₂v₂ᵀ, u₁ = e₃, u₂ = e₁, v₁ = [0.6, 0.8], v₂ = [−0.8, 0.6]: G = [[−0.8, 0.6], [0, 0], [1.8, 2.4]].
        // Rows: (e₁, 3·G[:,0]), (e₂, 3·G[:,1]) | (x₃, 0), (x₄, 100): with 3 samples the 4th row is cut and
        // (1/3)(c₁x₁ᵀ + c₂x₂ᵀ + 0) = G. With η = 0.1: rank 1 gives −0.3·u₁v₁ᵀ; rank 2 gives −0.1·G exactly.
        var first = new Batch(torch.eye(2), Labels: OneLayer.Matrix(2, 3, -2.4f, 0, 5.4f, 1.8f, 0, 7.2f));
        var second = new Batch(OneLayer.Matrix(2, 2, 1, 1, 1, 1), Labels: OneLayer.Matrix(2, 3, 0, 0, 0, 100, 100, 100));
        foreach (var (rank, expected) in new[] { (1, new float[] { 0, 0, 0, 0, -0.18f, -0.24f }), (2, new float[] { 0.08f, -0.06f, 0, 0, -0.18f, -0.24f }) })
        {
            var (net, peft) = OneLayer.Wrap(nn.Linear(2, 3), new LoraSbConfig
            {
                Rank = rank, CalibrationSamples = 3, CalibrationLearningRate = 0.1, CalibrationUpdate = LoraSbConfig.GradientUpdate,
            });
            LoraSbCalibration.Calibrate(peft, "default", [first, second], b => Loss(net, b));
            Assert.True(Weights.MaxAbsDiff(Bra(SbLayer(peft)), OneLayer.Matrix(3, 2, expected)) < 1e-6, $"rank {rank}");
        }
    }

    [Fact]
    public void Trainer_calibrates_before_the_first_step()
    {
        torch.manual_seed(2);
        var (net, peft) = OneLayer.Wrap(nn.Linear(2, 3), new LoraSbConfig { Rank = 1, CalibrationSamples = 2, CalibrationLearningRate = 0.01 });
        var data = new InMemoryBatchDataset([ReferenceBatch()]);
        // lr 0: the one optimizer step leaves R where the calibration put it.
        using var trainer = new Trainer(peft, b => Loss(net, b), TrainingData.FromDataset(data, shuffle: false),
            new TrainerOptions { MaxSteps = 1, Schedule = LearningRateSchedule.Constant(0), EvaluateBeforeTraining = false });
        Assert.Contains(trainer.Hooks, h => h is ICheckpointedHooks c && c.StateName == "lora_sb/default");
        trainer.Train();
        Assert.True(Weights.MaxAbsDiff(Bra(SbLayer(peft)), OneLayer.Matrix(3, 2, s_referenceBra)) < 1e-7);
    }

    [Fact]
    public void Trainer_never_recalibrates_an_initialised_adapter()
    {
        torch.manual_seed(4);
        var (net, peft) = OneLayer.Wrap(nn.Linear(2, 3), new LoraSbConfig { Rank = 1, InitWeights = false, CalibrationLearningRate = 0.01 });
        var layer = SbLayer(peft);
        var (b, a, r) = (layer.B("default").detach().clone(), layer.A("default").detach().clone(), layer.R("default").detach().clone());
        Assert.True(LoraSbCalibration.IsInitialised(peft, "default"));
        var data = new InMemoryBatchDataset([ReferenceBatch()]);
        using var trainer = new Trainer(peft, batch => Loss(net, batch), TrainingData.FromDataset(data, shuffle: false),
            new TrainerOptions { MaxSteps = 1, Schedule = LearningRateSchedule.Constant(0), EvaluateBeforeTraining = false });
        trainer.Train();
        Assert.True(Weights.Exact(layer.B("default"), b) && Weights.Exact(layer.A("default"), a) && Weights.Exact(layer.R("default"), r));
    }

    [Fact]
    public void Calibration_without_calibration_lr_names_the_key()
    {
        var (net, peft) = OneLayer.Wrap(nn.Linear(2, 3), new LoraSbConfig { Rank = 1 });
        var e = Assert.Throws<ConfigException>(() => LoraSbCalibration.Calibrate(peft, "default", [ReferenceBatch()], b => Loss(net, b)));
        Assert.Contains("calibration_lr must be set", e.Message);
    }

    [Fact]
    public void Resuming_onto_other_frames_is_refused()
    {
        torch.manual_seed(6);
        var (_, peft) = OneLayer.Wrap(nn.Linear(2, 3), new LoraSbConfig { Rank = 1 });
        var hooks = (ICheckpointedHooks)((ITrainingHooksProvider)MethodRegistry.Default.Get("LORA_SB")).CreateHooks(peft, "default")!;
        var state = hooks.SaveState();
        Assert.Empty(hooks.RestoreState(state));
        using (torch.no_grad())
        {
            SbLayer(peft).B("default").mul_(-1);
        }
        var e = Assert.Throws<ModelMismatchException>(() => hooks.RestoreState(state));
        Assert.Contains("adapter folder", e.Message);
    }

    [Fact]
    public void Uncalibrated_frames_are_orthonormal_and_saved_under_lora_sb_names()
    {
        torch.manual_seed(8);
        var (_, peft) = OneLayer.Wrap(nn.Linear(6, 5), new LoraSbConfig { Rank = 3 });
        var layer = SbLayer(peft);
        Assert.True(Weights.MaxAbsDiff(layer.B("default").t().matmul(layer.B("default")), torch.eye(3)) < 1e-5);
        Assert.True(Weights.MaxAbsDiff(layer.A("default").matmul(layer.A("default").t()), torch.eye(3)) < 1e-5);
        Assert.True(Weights.Exact(layer.R("default"), torch.zeros(3, 3)));
        var shapes = peft.AdapterStateDict("default").ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal([3L, 6], shapes[OneLayer.Prefix + "lora_sb_A.weight"]);
        Assert.Equal([3L, 3], shapes[OneLayer.Prefix + "lora_sb_R.weight"]);
        Assert.Equal([5L, 3], shapes[OneLayer.Prefix + "lora_sb_B.weight"]);
        Assert.Equal(3, shapes.Count);
    }

    [Fact]
    public void Resume_works_from_the_checkpoints_adapter_folder_and_refuses_fresh_frames()
    {
        torch.manual_seed(10);
        var lin = nn.Linear(2, 3);
        var (w0, b0) = (lin.weight!.detach().clone(), lin.bias!.detach().clone());
        var config = new LoraSbConfig { Rank = 1, CalibrationSamples = 2, CalibrationLearningRate = 0.01 };
        var data = new InMemoryBatchDataset([ReferenceBatch()]);
        var output = Directory.CreateTempSubdirectory("peftsharp-lorasb-").FullName;
        try
        {
            var options = new TrainerOptions
            {
                MaxSteps = 2, Schedule = LearningRateSchedule.Constant(0.001), EvaluateBeforeTraining = false, CheckpointEvery = 1, OutputDirectory = output,
            };
            var (net, peft) = OneLayer.Wrap(lin, config);
            string checkpoint;
            using (var trainer = new Trainer(peft, b => Loss(net, b), TrainingData.FromDataset(data, shuffle: false), options with { MaxSteps = 1 }))
            {
                trainer.Train();
                checkpoint = Checkpoints.Latest(output)!;
            }

            nn.Module<Tensor, Tensor> FreshBase()
            {
                var fresh = nn.Linear(2, 3);
                using (torch.no_grad())
                {
                    fresh.weight!.copy_(w0);
                    fresh.bias!.copy_(b0);
                }
                return nn.Sequential(("layer", fresh));
            }

            // A new, uncalibrated adapter has other frames: resuming onto it would train R in the wrong basis.
            var wrong = FreshBase();
            var wrongPeft = PeftModel.Create(wrong, config with { TargetModules = TargetModules.Of("layer") });
            using (var trainer = new Trainer(wrongPeft, b => Loss(wrong, b), TrainingData.FromDataset(data, shuffle: false), options))
            {
                Assert.Throws<ModelMismatchException>(() => trainer.Resume(checkpoint));
            }

            var right = FreshBase();
            var rightPeft = PeftModel.Wrap(right);
            PeftAdapterFiles.Load(rightPeft, Path.Combine(checkpoint, Checkpoints.AdapterFolder), isTrainable: true);
            using (var trainer = new Trainer(rightPeft, b => Loss(right, b), TrainingData.FromDataset(data, shuffle: false), options with { OutputDirectory = null, CheckpointEvery = 0 }))
            {
                trainer.Resume(checkpoint);
                trainer.Train();
                Assert.Equal(2, trainer.Step);
            }
        }
        finally
        {
            Directory.Delete(output, true);
        }
    }
}
