import Testing

@testable import Yamux

@Suite struct YamuxStreamStateMachineTests {
    @Test func outboundOpenAcknowledgeAndCloseBothWays() throws {
        var machine = YamuxStreamStateMachine()
        #expect(machine.state == .idle)
        #expect(!machine.maySendData && !machine.mayReceiveData)
        machine.sendSYN()
        #expect(machine.state == .synSent)
        #expect(machine.maySendData && machine.mayReceiveData)
        machine.receiveACK()
        #expect(machine.state == .established)
        #expect(machine.sendFIN() == .halfClosed)
        #expect(machine.state == .localClosed)
        #expect(!machine.maySendData && machine.mayReceiveData)
        #expect(machine.sendFIN() == .alreadyClosed)
        #expect(try machine.receiveFIN() == .closed)
        #expect(machine.state == .closed)
    }

    @Test func inboundOpenRemoteCloseFirst() throws {
        var machine = YamuxStreamStateMachine()
        machine.receiveSYN()
        #expect(machine.state == .synReceived)
        #expect(machine.acknowledgementPending)
        #expect(try machine.receiveFIN() == .halfClosed)
        #expect(machine.state == .remoteClosed)
        #expect(machine.maySendData && !machine.mayReceiveData)
        // The ACK is still owed after the peer's FIN.
        let first = machine.sendACK()
        let second = machine.sendACK()
        #expect(first && !second)
        #expect(machine.state == .remoteClosed)
        #expect(machine.sendFIN() == .closed)
        #expect(machine.state == .closed)
    }

    @Test func acknowledgingMovesSynReceivedToEstablished() {
        var machine = YamuxStreamStateMachine()
        machine.receiveSYN()
        let acknowledged = machine.sendACK()
        #expect(acknowledged)
        #expect(machine.state == .established)
        // A stray ACK from the peer changes nothing.
        machine.receiveACK()
        #expect(machine.state == .established)
    }

    @Test func finBeforeAckOnOutboundStream() throws {
        var machine = YamuxStreamStateMachine()
        machine.sendSYN()
        #expect(try machine.receiveFIN() == .halfClosed)
        #expect(machine.state == .remoteClosed)
        // A late ACK does not reopen anything.
        machine.receiveACK()
        #expect(machine.state == .remoteClosed)
    }

    @Test func secondFinIsAProtocolError() throws {
        var machine = YamuxStreamStateMachine()
        machine.sendSYN()
        _ = try machine.receiveFIN()
        #expect(throws: YamuxError.self) { try machine.receiveFIN() }
        do {
            _ = try machine.receiveFIN()
        } catch {
            #expect(error.code == .unexpectedFlag)
        }
    }

    @Test func resetIsTerminal() {
        var machine = YamuxStreamStateMachine()
        machine.receiveSYN()
        machine.reset()
        #expect(machine.state == .reset)
        #expect(!machine.acknowledgementPending)
        #expect(!machine.maySendData && !machine.mayReceiveData)
        #expect(machine.sendFIN() == .alreadyClosed)
    }
}
